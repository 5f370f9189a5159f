"""Wrappers shared by env families built on someone else's env class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


class AddXY(gym.Wrapper):
    """Adds ``info["xy"]`` (float64, shape (2,)) to every reset and step, for coverage metrics.

    ``position(env, info)`` reads the agent's position from the unwrapped env or the info it returned.
    """

    def __init__(self, env: gym.Env, position: Callable[[gym.Env, dict[str, Any]], Any]):
        super().__init__(env)
        self._position = position

    def _with_xy(self, info: dict[str, Any]) -> dict[str, Any]:
        info["xy"] = np.asarray(self._position(self.env.unwrapped, info), dtype=np.float64)
        return info

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._with_xy(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_xy(info)
