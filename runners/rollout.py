"""The rollout engine: vector envs and the stepping loop that feeds agents.

Every back-end yields Gymnasium 1.x vector envs in ``AutoresetMode.SAME_STEP`` (see ``envs.base``):
a finished episode's last observation arrives in ``info["final_obs"]`` and the returned observation is
already the next episode's first, so each vector step is one real transition per env.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base import Transition
from envs import AUTORESET_MODE, EnvSpec
from envs.datasets import DatasetWriter


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


def reset_with_levels(envs: gym.vector.VectorEnv, seed: int | None, levels: Sequence[Any]):
    """Reset every env, env ``i`` with ``options={"level": levels[i]}`` and seed ``seed + i`` (unseeded if
    ``seed`` is None), in any back-end. Returns ``(obs, info)`` as ``envs.reset`` does.

    Vector envs that take a per-env level list themselves (``accepts_level_lists``, as the Ray back-end)
    get it in one reset. Gymnasium's Sync/Async vector envs get one masked reset per env (``reset_mask``),
    whose infos are merged, after a plain reset with the same seeds: a masked reset needs every env to
    hold an observation, and reseeding makes the second reset of an env independent of the first."""
    levels = list(levels)
    n = envs.num_envs
    if len(levels) != n:
        raise ValueError(f"reset_with_levels needs one level per env ({n}), got {len(levels)}")
    if getattr(envs, "accepts_level_lists", False):
        return envs.reset(seed=seed, options={"level": levels})
    seeds = [None] * n if seed is None else [seed + i for i in range(n)]
    envs.reset(seed=seeds)
    info: dict[str, Any] = {}
    for i, level in enumerate(levels):
        mask = np.zeros(n, dtype=bool)
        mask[i] = True
        obs, env_info = envs.reset(seed=seeds, options={"reset_mask": mask, "level": level})
        _overlay_info(info, env_info)
    return obs, info


def _overlay_info(dst: dict[str, Any], src: dict[str, Any]) -> None:
    """Copy the rows of vector info ``src`` that its masks set into ``dst`` (same number of envs)."""
    for key, value in src.items():
        mask = src.get(f"_{key}")
        if mask is None:  # a mask itself
            continue
        if isinstance(value, dict):
            _overlay_info(dst.setdefault(key, {}), value)
        elif key not in dst:
            dst[key] = value.copy()
        else:
            dst[key][mask] = value[mask]
        dst[f"_{key}"] = dst.get(f"_{key}", np.zeros_like(mask)) | mask


def real_next_obs(next_obs: np.ndarray, info: dict[str, Any], done: np.ndarray, provides_final_obs: bool):
    """The successor of each env's step: ``final_obs`` where an episode ended, else ``next_obs``.

    Returns ``(successor, valid)``; ``valid`` is False where the env could not report the last
    observation (those steps are terminal, so nothing bootstraps from it)."""
    if not done.any():  # the common step: no copy of the (possibly pixel) batch
        return next_obs, np.ones(len(done), dtype=bool)
    mask = info.get("_final_obs")
    if not provides_final_obs or mask is None:
        return next_obs, ~done
    successor = next_obs.copy()  # next_obs itself stays the new episodes' first observations
    for i in np.flatnonzero(mask):
        successor[i] = info["final_obs"][i]
    return successor, ~(done & ~mask)


@dataclass
class EpisodeTracker:
    """Running return and length per env; finished episodes are collected until drained."""

    num_envs: int
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    finished: list[tuple[int, float, int]] = field(default_factory=list)  # (env index, return, length)
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
            self.finished.append((int(i), float(self.returns[i]), int(self.lengths[i])))
            self.returns[i] = 0.0
            self.lengths[i] = 0
        self.total_episodes += int(done.sum())

    def drain(self) -> list[tuple[int, float, int]]:
        out, self.finished = self.finished, []
        return out


def step_extras(info: dict[str, Any], done: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The per-step info fields ``keys`` of one vector step, one array per key, each row from the step the
    env really took: ``final_info`` where an episode ended (SAME_STEP autoreset puts the new episode's reset
    info in ``info`` there). A key the env did not report this step is left out."""
    extras: dict[str, np.ndarray] = {}
    final = info.get("final_info", {}) if done.any() else {}
    for key in keys:
        if key not in info and key not in final:
            continue
        if key in info:
            value = np.array(info[key], copy=True)
        else:  # reported only at episode ends
            value = np.zeros_like(np.asarray(final[key]))
        if key in final:
            ended = done & np.asarray(final.get(f"_{key}", done), dtype=bool)
            if ended.any():
                value[ended] = np.asarray(final[key])[ended]
        extras[key] = value
    return extras


@dataclass
class StepResult:
    """What one collected vector step produced."""

    next_obs: np.ndarray  # the observations to act on next (new episodes' first where one ended)
    metrics: dict[str, float]  # training scalars of the updates the agent ran on this step
    info: dict[str, Any]
    batch: Transition  # what the agent observed


def collect(agent, envs: gym.vector.VectorEnv, obs: np.ndarray, provides_final_obs: bool, tracker: EpisodeTracker,
            recorder: DatasetWriter | None = None, extra_keys: Sequence[str] = ()) -> StepResult:
    """One vector step: act, step, hand the transition (with the per-step info fields ``extra_keys`` in its
    ``extras``) to the agent, and to ``recorder``, which writes a dataset; count episodes in ``tracker`` and
    tell the agent which envs start a new one."""
    action = agent.act(obs, deterministic=False)
    next_obs, reward, terminated, truncated, info = envs.step(action)
    done = np.logical_or(terminated, truncated)
    successor, valid = real_next_obs(next_obs, info, done, provides_final_obs)
    dropped = info.get("dropped")  # set by back-ends that lose envs with a crashed worker
    batch = Transition(obs, action, np.asarray(reward, dtype=np.float32), successor, np.asarray(terminated),
                       np.asarray(truncated), valid, dropped)
    if extra_keys:
        batch.extras = step_extras(info, done, extra_keys)
    metrics = agent.observe(batch)
    if recorder is not None:
        recorder.add(obs, action, reward, successor, terminated, truncated, info, next_obs, valid, dropped)
    tracker.step(reward, done, dropped)
    # A dropped row starts a new episode too (agents with per-env state, e.g. a skill, must reset it).
    started = done if dropped is None else done | dropped
    if started.any():
        agent.reset_episodes(started)
    return StepResult(next_obs, metrics, info, batch)


def collect_step(agent, envs: gym.vector.VectorEnv, obs: np.ndarray, provides_final_obs: bool,
                 tracker: EpisodeTracker, recorder: DatasetWriter | None = None,
                 extra_keys: Sequence[str] = ()) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """``collect`` returning (next obs, train metrics, info)."""
    result = collect(agent, envs, obs, provides_final_obs, tracker, recorder, extra_keys)
    return result.next_obs, result.metrics, result.info
