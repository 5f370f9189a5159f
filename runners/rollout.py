"""The rollout engine: vector envs and the stepping loop that feeds agents.

Every back-end yields Gymnasium 1.x vector envs in ``AutoresetMode.SAME_STEP`` (see ``envs.base``):
a finished episode's last observation arrives in ``info["final_obs"]`` and the returned observation is
already the next episode's first, so each vector step is one real transition per env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from envs import AUTORESET_MODE, EnvSpec

from agents.base import Transition


def make_vector_env(spec: EnvSpec, num_envs: int, backend: str = "sync", seed: int = 0, num_workers: int = 1,
                    ray_address: str | None = None, ray_num_cpus: int | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``spec`` stepped by the chosen back-end (sync: in process; async: one
    subprocess per env; ray: ``num_workers`` Ray actors, each stepping ``num_envs / num_workers`` envs).
    Locally, families with a native batched implementation use it instead of Sync/Async wrappers."""
    if backend == "ray":
        from runners.ray_rollout import RayVectorEnv

        return RayVectorEnv(spec, num_envs, num_workers, seed, address=ray_address, num_cpus=ray_num_cpus)
    if spec.native_vector:
        return spec.make_native_vec(num_envs, seed)
    fns = [spec.make for _ in range(num_envs)]
    if backend == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AUTORESET_MODE)
    if backend == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AUTORESET_MODE, context="spawn")
    raise ValueError(f"unknown rollout back-end {backend!r}; choose one of: sync, async, ray")


def real_next_obs(next_obs: np.ndarray, info: dict[str, Any], done: np.ndarray, provides_final_obs: bool):
    """The successor of each env's step: ``final_obs`` where an episode ended, else ``next_obs``.

    Returns ``(successor, valid)``; ``valid`` is False where the env could not report the last
    observation (those steps are terminal, so nothing bootstraps from it)."""
    successor = next_obs.copy()
    valid = np.ones(len(done), dtype=bool)
    if done.any():
        mask = info.get("_final_obs")
        if provides_final_obs and mask is not None:
            for i in np.flatnonzero(mask):
                successor[i] = info["final_obs"][i]
            valid = ~(done & ~mask)
        else:
            valid = ~done
    return successor, valid


@dataclass
class EpisodeTracker:
    """Running return and length per env; finished episodes are collected until drained."""

    num_envs: int
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    finished: list[tuple[float, int]] = field(default_factory=list)
    total_episodes: int = 0
    dropped_episodes: int = 0  # episodes lost with a crashed rollout worker, never reported as finished

    def __post_init__(self) -> None:
        self.returns = np.zeros(self.num_envs)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)

    def step(self, reward: np.ndarray, done: np.ndarray, dropped: np.ndarray | None = None) -> None:
        if dropped is not None and dropped.any():
            self.dropped_episodes += int(dropped.sum())
            self.returns[dropped] = 0.0
            self.lengths[dropped] = 0
            reward = np.where(dropped, 0.0, reward)
            done = done & ~dropped
        self.returns += reward
        self.lengths += 1
        for i in np.flatnonzero(done):
            self.finished.append((float(self.returns[i]), int(self.lengths[i])))
            self.returns[i] = 0.0
            self.lengths[i] = 0
        self.total_episodes += int(done.sum())

    def drain(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out


def collect_step(agent, envs: gym.vector.VectorEnv, obs: np.ndarray, provides_final_obs: bool,
                 tracker: EpisodeTracker) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """One vector step: act, step, hand the transition to the agent. Returns (next obs, train metrics, info)."""
    action = agent.act(obs, deterministic=False)
    next_obs, reward, terminated, truncated, info = envs.step(action)
    done = np.logical_or(terminated, truncated)
    successor, valid = real_next_obs(next_obs, info, done, provides_final_obs)
    dropped = info.get("dropped")  # set by back-ends that lose envs with a crashed worker
    metrics = agent.observe(
        Transition(obs, action, np.asarray(reward, dtype=np.float32), successor,
                   np.asarray(terminated), np.asarray(truncated), valid, dropped)
    )
    tracker.step(reward, done, dropped)
    if done.any():
        agent.reset_episodes(done)
    return next_obs, metrics, info
