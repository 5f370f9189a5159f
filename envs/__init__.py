"""Environments: Gymnasium registrations and wrappers.

Importing this package registers every id below with Gymnasium. ``ENVS`` maps each CLI short name
(``env=NAME``) to the spec (a typed dataclass, see ``envs.base``) that builds it; ``env.<field>=...``
overrides on the command line set that spec's fields.
"""

from __future__ import annotations

from envs.base import AUTORESET_MODE, EnvSpec
from envs.bipedal import BipedalSpec
from envs.dmc import DMCSpec
from envs.locomotion import MujocoLocomotionSpec
from envs.maze_spec import MazeSpec
from envs.minigrid_env import MiniGridSpec
from envs.pointmaze import PointMazeSpec
from envs.procgen_env import ProcgenSpec
from envs.registration import register_all

register_all()

ENVS: dict[str, EnvSpec] = {
    "quadruped": DMCSpec(name="quadruped", domain="quadruped", task="walk"),
    "walker": DMCSpec(name="walker", domain="walker", task="walk"),
    "cheetah": DMCSpec(name="cheetah", domain="cheetah", task="run"),
    "ant": MujocoLocomotionSpec(name="ant", robot="Ant"),
    "halfcheetah": MujocoLocomotionSpec(name="halfcheetah", robot="HalfCheetah"),
    "pointmaze": PointMazeSpec(name="pointmaze"),
    "minigrid": MiniGridSpec(name="minigrid"),
    "procgen": ProcgenSpec(name="procgen"),
    "bipedal": BipedalSpec(name="bipedal"),
    "maze": MazeSpec(name="maze"),
}

__all__ = ["AUTORESET_MODE", "ENVS", "EnvSpec"]
