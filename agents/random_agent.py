"""Uniform random policy: the reference point every unsupervised method is compared against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import Agent, AgentConfig


@dataclass
class RandomConfig(AgentConfig):
    name: str = "random"


class RandomAgent(Agent):
    def __init__(self, cfg: RandomConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device | None) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        self.rng = np.random.default_rng()

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        n = len(obs)
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return self.rng.integers(0, space.n, size=n)
        return self.rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
