"""Gymnasium MuJoCo locomotion (Ant-v5, HalfCheetah-v5) with the agent's position for skill discovery.

We register ``openrl/Ant-v0`` and ``openrl/HalfCheetah-v0``. Each builds the environment class that
Gymnasium registers as ``Ant-v5`` / ``HalfCheetah-v5`` (looked up in Gymnasium's registry, with the same
1000-step time limit) and adds ``info["xy"]``: Ant's torso x-y (Gymnasium's ``x_position`` and
``y_position``), HalfCheetah's ``(x, 0)`` (the model is planar). Our own ids are needed because the xy
wrapper must be part of what ``gym.make(id)`` returns.

``xy_in_obs=True`` keeps the position in the observation (v5's
``exclude_current_positions_from_observation=False``): Ant's obs then starts with torso x, y (2 more
dims), HalfCheetah's with x (1 more dim).

METRA's settings (Park et al., 2024), which follow LSD's, are reproduced by::

    env=ant env.xy_in_obs=true env.include_cfrc_ext=false env.terminate_when_unhealthy=false \\
        env.max_episode_steps=200
    env=halfcheetah env.xy_in_obs=true env.max_episode_steps=200

i.e. observations are the full qpos (position included) and qvel without contact forces (Ant: 29
dims, HalfCheetah: 18), 200-step episodes, no early termination, frame skip 5 (Gymnasium's default);
the environment reward is ignored during unsupervised pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from envs.base import EnvSpec, GoalTask
from envs.headless import default_to_egl
from envs.wrappers import AddXY

ROBOTS = ("Ant", "HalfCheetah")
MAX_EPISODE_STEPS = 1000  # Gymnasium's limit for both v5 envs
# Options that only Ant-v5 has.
ANT_ONLY = ("include_cfrc_ext", "terminate_when_unhealthy")


# Goal reaching with the position in the observation (``xy_in_obs``): Ant's 8 goals on a circle of radius
# ANT_GOAL_RADIUS around the origin, HalfCheetah's x in CHEETAH_GOALS; success within GOAL_THRESHOLD (our
# choice: METRA's paper does not publish its goal set).
GOAL_THRESHOLD = 3.0
ANT_GOAL_RADIUS = 10.0
CHEETAH_GOALS = (-20.0, -10.0, 10.0, 20.0)


def _xy(env: gym.Env, info: dict[str, Any]) -> tuple[float, float]:
    return info["x_position"], info.get("y_position", 0.0)


def make_locomotion(robot: str = "Ant", xy_in_obs: bool = False, include_cfrc_ext: bool = True,
                    terminate_when_unhealthy: bool = True, **kwargs: Any) -> gym.Env:
    """Gymnasium's ``{robot}-v5`` environment class with ``info["xy"]``; extra kwargs go to that class."""
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot {robot!r}; choose one of: {', '.join(ROBOTS)}")
    default_to_egl()
    env_cls = load_env_creator(gym.spec(f"{robot}-v5").entry_point)
    if robot == "Ant":
        kwargs.update(include_cfrc_ext_in_observation=include_cfrc_ext,
                      terminate_when_unhealthy=terminate_when_unhealthy)
    env = env_cls(exclude_current_positions_from_observation=not xy_in_obs, **kwargs)
    return AddXY(env, _xy)


@dataclass
class MujocoLocomotionSpec(EnvSpec):
    """Gymnasium MuJoCo ``robot`` (Ant or HalfCheetah), v5 dynamics and rewards.

    ``xy_in_obs`` adds the position to the observation; ``include_cfrc_ext`` (contact forces in Ant's
    observation) and ``terminate_when_unhealthy`` apply to Ant only. The module docstring lists the
    overrides that give METRA's setting.
    """

    robot: str = "Ant"
    xy_in_obs: bool = False
    include_cfrc_ext: bool = True
    terminate_when_unhealthy: bool = True

    step_info_keys: ClassVar[tuple[str, ...]] = ("xy",)

    def validate(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"unknown robot {self.robot!r}; choose one of: {', '.join(ROBOTS)}")
        if self.robot != "Ant":
            changed = [name for name in ANT_ONLY if not getattr(self, name)]
            if changed:
                raise ValueError(f"{', '.join(changed)}: Ant-only options, leave them at true for robot {self.robot}")

    def gym_id(self) -> str:
        return f"openrl/{self.robot}-v0"

    def make_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"xy_in_obs": self.xy_in_obs}
        if self.robot == "Ant":
            kwargs.update({name: getattr(self, name) for name in ANT_ONLY})
        return kwargs

    def coverage_axes(self) -> tuple[int, ...]:
        """HalfCheetah is a planar runner: coverage counts x bins only (METRA's metric)."""
        return (0,) if self.robot == "HalfCheetah" else (0, 1)

    def reward_tasks(self) -> dict[str, EnvSpec]:
        """The robot's own forward-running reward."""
        return {"forward": self}

    def goal_task(self) -> GoalTask | None:
        """With ``xy_in_obs``: the goals above; the goal observation is the current observation with its
        position entries (Ant: x, y; HalfCheetah: x) replaced by the goal's, the rest of the state unchanged."""
        if not self.xy_in_obs:
            return None
        k = 2 if self.robot == "Ant" else 1
        if self.robot == "Ant":
            angles = np.arange(8) * np.pi / 4
            goals = ANT_GOAL_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        else:
            goals = np.array([[x, 0.0] for x in CHEETAH_GOALS])
        return GoalTask(goals, GOAL_THRESHOLD, _PositionReplaced(k))

    def describe(self) -> str:
        return self.robot.lower()


class _PositionReplaced:
    """goal_observation: the observation with its first ``k`` entries (the position) set to the goal's."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        out = obs.copy()
        out[:, :self.k] = goal[:, :self.k]
        return out
