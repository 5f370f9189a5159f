"""Procgen (Cobbe et al., 2020) as a Gymnasium 1.x vector env over procgen's gym3 ``ProcgenGym3Env``.

Procgen steps all its envs in one C++ call, so the suite uses that batch directly
(``ProcgenSpec.native_vector``) rather than Sync/Async wrappers around single envs.

Semantics of :class:`ProcgenVectorEnv`:

* Observations: (num_envs, 64, 64, 3) uint8 RGB. Actions: procgen's 15 discrete buttons,
  ``MultiDiscrete([15] * num_envs)`` (single: ``Discrete(15)``).
* Autoreset: ``AutoresetMode.SAME_STEP``. gym3 starts the next episode inside the step that ends one, so
  on that step the returned observation is already the new episode's first; the reward is the ended
  episode's last. gym3 never exposes the ended episode's last observation, so there is no
  ``info["final_obs"]`` (``ProcgenSpec.provides_final_obs = False``).
* Every episode end is ``terminated``, never ``truncated``: procgen's time limit is part of the game
  (the agent cannot observe the step count, as in the procgen benchmark's own training code).
* ``info["level_seed"]`` (int64, per env): the level being played. On a step that ended an episode,
  ``info["prev_level_seed"]`` and ``info["prev_level_complete"]`` describe the finished episode (masked
  by ``info["_prev_level_seed"]``), which level-replay curricula use. Episode returns are not added:
  the runner tracks them, and Gymnasium's vector ``RecordEpisodeStatistics`` works on this env.
* Seeding: gym3 envs cannot be reseeded or reset in place, so ``reset`` rebuilds the procgen env
  (about a millisecond) with ``rand_seed`` = the given seed, or a seed drawn from ``np_random``.
  The same seed and actions reproduce a rollout.

:class:`ProcgenEnv` is the same thing with one env, for ``gym.make`` and ``check_env``: its observation at
a termination is the next episode's first (no final frame exists) and ``reset()`` starts a fresh episode.
"""

from __future__ import annotations

import contextlib
import difflib
import io
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from envs.base import EnvSpec

# procgen.env.ENV_NAMES, kept here so that validating a config does not import procgen (and old gym).
GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot", "heist",
         "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot")
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")
NUM_ACTIONS = 15
OBS_SHAPE = (64, 64, 3)


def _procgen_gym3_env():
    """procgen's ``ProcgenGym3Env``, imported on first use. procgen imports the unmaintained ``gym``
    package, whose import prints a deprecation notice to stderr; nothing here uses ``gym``, so it is muted."""
    with contextlib.redirect_stderr(io.StringIO()):
        from procgen import ProcgenGym3Env
    return ProcgenGym3Env


class ProcgenVectorEnv(VectorEnv):
    """``num_envs`` procgen games stepped together; see the module docstring for the semantics."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, num_envs: int, game: str = "coinrun", num_levels: int = 0, start_level: int = 0,
                 distribution_mode: str = "easy", seed: int | None = None, render_mode: str | None = None):
        if game not in GAMES:
            raise ValueError(f"unknown procgen game {game!r}; choose one of: {', '.join(GAMES)}")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._make_args = {"env_name": game, "num_levels": num_levels, "start_level": start_level,
                           "distribution_mode": distribution_mode}
        self.single_observation_space = gym.spaces.Box(0, 255, OBS_SHAPE, dtype=np.uint8)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._env = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rand_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        extra = {"render_mode": "rgb_array"} if self.render_mode == "rgb_array" else {}
        self._env = _procgen_gym3_env()(num=self.num_envs, rand_seed=rand_seed, **self._make_args, **extra)
        _, obs, _ = self._env.observe()
        return obs["rgb"].copy(), self._level_info(np.zeros(self.num_envs, dtype=bool))

    def step(self, actions):
        if self._env is None:
            raise RuntimeError("call reset() before step()")
        self._env.act(np.asarray(actions, dtype=np.int32).reshape(self.num_envs))
        reward, obs, first = self._env.observe()
        terminated = np.asarray(first, dtype=bool).copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        return (obs["rgb"].copy(), np.asarray(reward, dtype=np.float64), terminated, truncated,
                self._level_info(terminated))

    def _level_info(self, ended: np.ndarray) -> dict[str, Any]:
        infos = self._env.get_info()
        info: dict[str, Any] = {
            "level_seed": np.array([i["level_seed"] for i in infos], dtype=np.int64),
            "_level_seed": np.ones(self.num_envs, dtype=bool),
        }
        if ended.any():
            info["prev_level_seed"] = np.array([i["prev_level_seed"] for i in infos], dtype=np.int64)
            info["prev_level_complete"] = np.array([i["prev_level_complete"] for i in infos], dtype=bool)
            info["_prev_level_seed"] = info["_prev_level_complete"] = ended.copy()
        return info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """512x512 frames of every env (when built with ``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self._env is None:
            return None
        return tuple(i["rgb"] for i in self._env.get_info())

    def close_extras(self, **kwargs: Any) -> None:
        self._env = None


class ProcgenEnv(gym.Env):
    """One procgen game as a plain Gymnasium env (a one-env :class:`ProcgenVectorEnv`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, game: str = "coinrun", num_levels: int = 0, start_level: int = 0,
                 distribution_mode: str = "easy", render_mode: str | None = None):
        self._vec = ProcgenVectorEnv(1, game, num_levels, start_level, distribution_mode, render_mode=render_mode)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=int(self.np_random.integers(2**31 - 1)))
        return obs[0], {k: v[0] for k, v in info.items() if not k.startswith("_")}

    def step(self, action):
        obs, reward, terminated, truncated, info = self._vec.step(np.array([action]))
        info = {k: v[0] for k, v in info.items() if not k.startswith("_")}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        frames = self._vec.render()
        return None if frames is None else frames[0]

    def close(self):
        self._vec.close()


@dataclass
class ProcgenSpec(EnvSpec):
    """A procgen ``game``: levels ``start_level .. start_level + num_levels - 1`` (``num_levels=0``: all),
    ``distribution_mode`` easy/hard/extreme/memory/exploration (not every game has every mode).

    The standard generalisation protocol trains on ``num_levels=200`` (easy) and tests on ``num_levels=0``.
    Episodes end only by the game's own rules and time limit, so ``max_episode_steps`` must stay unset.
    """

    game: str = "coinrun"
    num_levels: int = 0
    start_level: int = 0
    distribution_mode: str = "easy"

    native_vector = True
    provides_final_obs = False
    step_info_keys = ("level_seed",)

    def validate(self) -> None:
        if self.game not in GAMES:
            close = difflib.get_close_matches(self.game, GAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown procgen game {self.game!r}{hint}; choose one of: {', '.join(GAMES)}")
        if self.distribution_mode not in DISTRIBUTION_MODES:
            raise ValueError(f"unknown distribution_mode {self.distribution_mode!r}; "
                             f"choose one of: {', '.join(DISTRIBUTION_MODES)}")
        if self.num_levels < 0 or self.start_level < 0:
            raise ValueError(f"num_levels and start_level must be >= 0, got {self.num_levels}, {self.start_level}")
        if self.max_episode_steps is not None:
            raise ValueError("procgen episodes end by the game's own time limit; leave max_episode_steps unset")

    def gym_id(self) -> str:
        return "openrl/Procgen-v0"

    def make_kwargs(self) -> dict[str, Any]:
        return {"game": self.game, "num_levels": self.num_levels, "start_level": self.start_level,
                "distribution_mode": self.distribution_mode}

    def make_native_vec(self, num_envs: int, seed: int) -> gym.vector.VectorEnv:
        return ProcgenVectorEnv(num_envs, seed=seed, **self.make_kwargs())

    def describe(self) -> str:
        return f"procgen-{self.game}"
