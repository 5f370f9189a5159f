"""Quadruped ``stand`` and ``jump``: the URLB tasks that dm_control 1.0.50's suite does not have.

dm_control ships quadruped walk/run/escape/fetch. URLB (Laskin et al., 2021) adds stand and jump on the
same body, and unsupervised-RL papers report zero-shot and fine-tuning results on all four of
stand/walk/run/jump, so we define the two missing ones here with URLB's reward definitions, built from
dm_control's own quadruped model and reward terms:

* stand: the upright term alone (1 when the torso's z-axis points up, falling linearly to 0 upside-down);
* jump:  upright x height, the height term being 1 once the torso subtree's centre of mass is at least
  1 m above the floor and falling linearly to 0.5 at the floor.

Both start like dm_control's walk (random orientation, dropped from the lowest non-contacting height),
on walk's floor, with walk's 20 s time limit at 50 Hz control (1000 steps).

This module imports dm_control at import time; ``envs.dmc`` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Callable

from dm_control.rl import control
from dm_control.suite import common, quadruped
from dm_control.utils import rewards

JUMP_HEIGHT = 1.0  # metres; URLB's target centre-of-mass height
_TIME_LIMIT = 20.0  # seconds, as dm_control's quadruped walk/run
_CONTROL_TIMESTEP = 0.02
_FLOOR_SIZE = 10.0  # walk's floor: time limit x walk speed (0.5 m/s)


class Stand(quadruped.Move):
    """Reward: stay upright. ``Move`` supplies the episode initialisation and observations."""

    def __init__(self, random=None):
        super().__init__(desired_speed=0.0, random=random)

    def get_reward(self, physics):
        # dm_control's own upright term (a private helper of its quadruped module, pinned by our version pin).
        return quadruped._upright_reward(physics)


class Jump(quadruped.Move):
    """Reward: stay upright with the centre of mass at least ``JUMP_HEIGHT`` above the floor."""

    def __init__(self, random=None):
        super().__init__(desired_speed=0.0, random=random)

    def get_reward(self, physics):
        height = physics.named.data.sensordata["center_of_mass"][2]
        jump_up = rewards.tolerance(height, bounds=(JUMP_HEIGHT, float("inf")), margin=JUMP_HEIGHT,
                                    value_at_margin=0.5, sigmoid="linear")
        return quadruped._upright_reward(physics) * jump_up


def _quadruped_env(task: quadruped.Move) -> control.Environment:
    physics = quadruped.Physics.from_xml_string(quadruped.make_model(floor_size=_FLOOR_SIZE), common.ASSETS)
    return control.Environment(physics, task, time_limit=_TIME_LIMIT, control_timestep=_CONTROL_TIMESTEP)


# (domain, task) -> builder taking dm_control's ``random`` argument (seed, RandomState or None).
EXTRA_TASKS: dict[tuple[str, str], Callable[..., control.Environment]] = {
    ("quadruped", "stand"): lambda random=None: _quadruped_env(Stand(random=random)),
    ("quadruped", "jump"): lambda random=None: _quadruped_env(Jump(random=random)),
}
