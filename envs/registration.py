"""The Gymnasium ids this suite defines. Entry points are strings, so registering imports no simulator.

| id                       | builds                                    | time limit                      |
|--------------------------|-------------------------------------------|---------------------------------|
| openrl/DMC-v0            | envs.dmc.DMCEnv (domain=, task=, ...)     | dm_control's own (1000 steps)   |
| openrl/Ant-v0            | Gymnasium's Ant-v5 class + info["xy"]     | 1000                            |
| openrl/HalfCheetah-v0    | Gymnasium's HalfCheetah-v5 class + xy     | 1000                            |
| openrl/PointMaze-v0      | envs.pointmaze.PointMazeEnv (layout=, ...)| 200                             |
| openrl/MiniGrid-v0       | any MiniGrid id (minigrid_id=, obs=)      | MiniGrid's own max_steps        |
| openrl/Procgen-v0        | one procgen game; ``gym.make_vec`` gives  | the game's own                  |
|                          | the native batched env                    |                                 |
| openrl/ParametricBipedal-v0 | envs.bipedal.ParametricBipedalWalker | 2000 (teachDeepRL's max_ep_len) |
|                          | (body=, track=, level_low=, level_high=)  |                                 |
| openrl/Maze-v0           | envs.maze.MazeEnv (size=, max_steps=,     | MiniGrid's own max_steps (250)  |
|                          | obs=): levels set at reset                |                                 |
"""

from __future__ import annotations

import gymnasium as gym

from envs.bipedal import MAX_EPISODE_STEPS as BIPEDAL_STEPS
from envs.locomotion import MAX_EPISODE_STEPS as LOCOMOTION_STEPS
from envs.locomotion import ROBOTS

POINTMAZE_STEPS = 200


def _ids() -> dict[str, dict]:
    ids: dict[str, dict] = {
        "openrl/DMC-v0": {"entry_point": "envs.dmc:DMCEnv"},
        "openrl/PointMaze-v0": {"entry_point": "envs.pointmaze:PointMazeEnv", "max_episode_steps": POINTMAZE_STEPS},
        "openrl/MiniGrid-v0": {"entry_point": "envs.minigrid_env:make_minigrid"},
        "openrl/Procgen-v0": {"entry_point": "envs.procgen_env:ProcgenEnv",
                              "vector_entry_point": "envs.procgen_env:ProcgenVectorEnv"},
        "openrl/ParametricBipedal-v0": {"entry_point": "envs.bipedal:ParametricBipedalWalker",
                                        "max_episode_steps": BIPEDAL_STEPS},
        "openrl/Maze-v0": {"entry_point": "envs.maze:MazeEnv"},
    }
    for robot in ROBOTS:
        ids[f"openrl/{robot}-v0"] = {"entry_point": "envs.locomotion:make_locomotion", "kwargs": {"robot": robot},
                                     "max_episode_steps": LOCOMOTION_STEPS}
    return ids


REGISTERED_IDS = tuple(_ids())


def register_all() -> None:
    """Register every id above with Gymnasium; ids already registered are left alone."""
    for env_id, kwargs in _ids().items():
        if env_id not in gym.registry:
            gym.register(env_id, **kwargs)
