"""Datasets of transitions: one documented on-disk format, a writer fed by vector rollouts, a reader.

Offline agents (HILP, GCBC, the offline phase of safe RL) learn from data that this suite's own agents
collect (ExORL's recipe: the public datasets cannot be downloaded everywhere). Minari is the ecosystem's
format but requires numpy >= 2, which procgen's pin excludes, so the suite writes Minari's layout itself:

    DATASET/
      metadata.json            env name and spec fields, spaces, agent, steps, seed, shard list
      data/shard_STEP.hdf5     Minari's per-episode layout: one group ``episode_<id>`` per episode with
                               observations [T+1], actions [T], rewards [T], terminations [T],
                               truncations [T] and infos/<name> [T+1] (e.g. infos/xy); group attrs
                               id, total_steps; file attrs total_episodes, total_steps

Episodes are whole: the observations of an episode are its reset observation followed by the real
successor of every step (``info["final_obs"]`` at its end), so ``observations[1:]`` are the next
observations. A finished episode waits in memory until ``flush(step)``, which the training loop calls at
every checkpoint: the shard is written to a temporary name and renamed, so a crash never leaves a
half-written file. Resuming a run at checkpoint step S reopens the dataset and deletes shards written
after S (their episodes will be collected again), so the dataset matches the resumed run. Episodes still
running at ``close()`` are written as truncated (training stopped them).

Rows flagged ``dropped`` (an env lost with a crashed rollout worker) end that env's episode without
writing it: its steps are unknown. Native vector envs that cannot report the last observation
(``next_obs_valid`` False, always terminal) repeat the previous observation there and set the episode
attr ``final_obs_valid`` False; readers never bootstrap from a terminal successor anyway.

``load_dataset`` flattens the episodes into transition arrays (``TransitionDataset``) and checks the
dataset against an env spec: same env family and the same observation and action spaces. Other spec
fields (a dm_control task, a maze goal) may differ on purpose: relabelling rewards for another task is
what zero-shot reward prompting does.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from envs.base import EnvSpec

FORMAT = "openrl-minari-layout"
FORMAT_VERSION = 1
METADATA = "metadata.json"
DATA_DIR = "data"


class DatasetError(ValueError):
    """A missing, corrupt or mismatched dataset: the message is one line meant for the user."""


def space_signature(space: gym.Space) -> list:
    return [type(space).__name__, list(space.shape or ()), str(space.dtype), int(getattr(space, "n", 0))]


# -- reading --------------------------------------------------------------------------------------


@dataclass
class TransitionDataset:
    """A dataset flattened to transitions; the transitions of an episode are contiguous, in time order."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    next_observations: np.ndarray
    episode_ids: np.ndarray
    timesteps: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [N, ...] of obs; "next_<name>" of next_obs
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, **arrays: Any) -> TransitionDataset:
        """Build from transition arrays (tests, relabelled copies); checks lengths and episode order."""
        ds = cls(**{k: (np.asarray(v) if k not in ("infos", "metadata") else v) for k, v in arrays.items()})
        ds.check()
        return ds

    def __len__(self) -> int:
        return len(self.rewards)

    def check(self) -> None:
        n = len(self.rewards)
        arrays = {"observations": self.observations, "actions": self.actions, "terminations": self.terminations,
                  "truncations": self.truncations, "next_observations": self.next_observations,
                  "episode_ids": self.episode_ids, "timesteps": self.timesteps, **self.infos}
        for name, array in arrays.items():
            if len(array) != n:
                raise DatasetError(f"dataset field {name} has {len(array)} rows, rewards has {n}")
        if len(np.unique(self.episode_ids)) != _runs(self.episode_ids):
            raise DatasetError("dataset episodes are not contiguous")

    def episode_end_index(self) -> np.ndarray:
        """[N]: the index of the last transition of each transition's episode."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        last = np.flatnonzero(np.append(self.episode_ids[1:] != self.episode_ids[:-1], True))
        return np.repeat(last, np.diff(np.append(-1, last)))

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in order."""
        _, index = np.unique(self.episode_ids, return_index=True)
        starts = np.sort(index)
        return np.add.reduceat(self.rewards, starts) if len(starts) else np.zeros(0)

    @property
    def num_episodes(self) -> int:
        return _runs(self.episode_ids)


def _runs(ids: np.ndarray) -> int:
    return int(len(ids) and 1 + np.count_nonzero(ids[1:] != ids[:-1]))


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    meta_path = path / METADATA
    if not meta_path.is_file():
        what = "is not a dataset (no metadata.json)" if path.is_dir() else "does not exist"
        raise DatasetError(f"dataset {path} {what}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset {path}: cannot read metadata.json ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DatasetError(f"dataset {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"dataset {path}: format version {meta.get('format_version')}, this suite reads {FORMAT_VERSION}")
    return meta


def check_compatible(meta: dict[str, Any], spec: EnvSpec, path: str | Path = "dataset") -> None:
    """Same env family and spaces, else a DatasetError naming the difference."""
    if meta["env"] != spec.name:
        raise DatasetError(f"dataset {path} was collected on env {meta['env']!r}, not {spec.name!r}")
    env = spec.make()
    try:
        spaces = {"observation": space_signature(env.observation_space), "action": space_signature(env.action_space)}
    finally:
        env.close()
    for key, sig in spaces.items():
        if meta["spaces"][key] != sig:
            raise DatasetError(f"dataset {path} has {key} space {meta['spaces'][key]}, env {spec.describe()} has {sig}")


def load_dataset(path: str | Path, spec: EnvSpec | None = None) -> TransitionDataset:
    """Read every shard of a dataset into transition arrays; with ``spec``, check it matches."""
    path = Path(path)
    meta = read_metadata(path)
    if spec is not None:
        check_compatible(meta, spec, path)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "actions", "rewards", "terminations",
                                                            "truncations", "ids", "t")}
    infos: dict[str, list[np.ndarray]] = {}
    for shard in meta["shards"]:
        shard_path = path / DATA_DIR / shard
        try:
            with h5py.File(shard_path, "r") as f:
                for name in sorted(f.keys(), key=lambda k: int(k.split("_")[1])):
                    _read_episode(f[name], columns, infos)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"dataset {path}: cannot read shard {shard} ({exc})") from None
    if not columns["rewards"]:
        raise DatasetError(f"dataset {path} has no episodes")
    cat = {k: np.concatenate(v) for k, v in columns.items()}
    return TransitionDataset.from_arrays(
        observations=cat["obs"], actions=cat["actions"], rewards=cat["rewards"], terminations=cat["terminations"],
        truncations=cat["truncations"], next_observations=cat["next_obs"], episode_ids=cat["ids"], timesteps=cat["t"],
        # an info entry some episodes lack (e.g. not reported at a reset) is left out rather than misaligned
        infos={k: np.concatenate(v) for k, v in infos.items() if len(v) == len(columns["rewards"])}, metadata=meta)


def _read_episode(group: h5py.Group, columns: dict[str, list], infos: dict[str, list]) -> None:
    obs = group["observations"][()]
    steps = int(group.attrs["total_steps"])
    if len(obs) != steps + 1:
        raise ValueError(f"{group.name} has {len(obs)} observations for {steps} steps")
    columns["obs"].append(obs[:-1])
    columns["next_obs"].append(obs[1:])
    for key in ("actions", "rewards", "terminations", "truncations"):
        columns[key].append(group[key][()])
    columns["ids"].append(np.full(steps, int(group.attrs["id"]), dtype=np.int64))
    columns["t"].append(np.arange(steps, dtype=np.int64))
    if "infos" in group:
        for name, values in group["infos"].items():
            values = values[()]
            infos.setdefault(name, []).append(values[:-1])
            infos.setdefault(f"next_{name}", []).append(values[1:])


# -- writing --------------------------------------------------------------------------------------


@dataclass
class _Episode:
    observations: list[np.ndarray]
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    infos: dict[str, list[np.ndarray]] = field(default_factory=dict)
    final_obs_valid: bool = True


# Per-step info entries kept in the dataset (when the env reports them).
INFO_KEYS = ("xy",)


class DatasetWriter:
    """Collects the transitions of a vector env (one ``add`` per vector step) into whole episodes."""

    def __init__(self, path: str | Path, spec: EnvSpec, observation_space: gym.Space, action_space: gym.Space,
                 num_envs: int, metadata: dict[str, Any] | None = None, resume_step: int | None = None) -> None:
        """A new dataset at ``path``; with ``resume_step`` an existing one is continued from that step
        (shards written after it are removed). A dataset already at ``path`` is never overwritten."""
        self.path = Path(path)
        self.num_envs = num_envs
        if (self.path / METADATA).exists():
            if resume_step is None:
                raise DatasetError(f"dataset {self.path} already exists; choose another path or remove it")
            self.meta = read_metadata(self.path)
            self._truncate_after(resume_step)
        elif self.path.exists() and any(self.path.iterdir()):
            raise DatasetError(f"{self.path} exists and is not a dataset; choose another path")
        else:
            self.meta = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "env": spec.name, "env_config": spec.to_config(),
                "spaces": {"observation": space_signature(observation_space), "action": space_signature(action_space)},
                "total_episodes": 0, "total_steps": 0, "shards": [], **(metadata or {}),
            }
            (self.path / DATA_DIR).mkdir(parents=True, exist_ok=True)
            self._write_metadata()
        self.running: list[_Episode | None] = [None] * num_envs
        self.finished: list[_Episode] = []

    # Episode bookkeeping ---------------------------------------------------------------------------

    def begin(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        """After ``envs.reset``: every env starts an episode."""
        for i in range(self.num_envs):
            self.running[i] = self._new_episode(obs[i], info, i)

    def _new_episode(self, obs: np.ndarray, info: dict[str, Any], i: int) -> _Episode:
        episode = _Episode([np.array(obs)])
        for key in INFO_KEYS:
            if key in info and info.get(f"_{key}", np.ones(self.num_envs, bool))[i]:
                episode.infos[key] = [np.array(info[key][i])]
        return episode

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any], reset_obs: np.ndarray,
            next_obs_valid: np.ndarray | None = None, dropped: np.ndarray | None = None) -> None:
        """One vector step. ``next_obs`` is the real successor (final observation at an episode end),
        ``reset_obs`` what the vector env returned (the next episode's first observation there)."""
        final_info = info.get("final_info", {})
        for i in range(self.num_envs):
            if dropped is not None and dropped[i]:  # the episode's steps are lost with the worker
                self.running[i] = self._new_episode(reset_obs[i], info, i)
                continue
            episode = self.running[i]
            done = bool(terminated[i] or truncated[i])
            valid = True if next_obs_valid is None else bool(next_obs_valid[i])
            episode.actions.append(np.array(action[i]))
            episode.rewards.append(float(reward[i]))
            episode.terminations.append(bool(terminated[i]))
            episode.truncations.append(bool(truncated[i]))
            episode.observations.append(np.array(next_obs[i] if valid else episode.observations[-1]))
            episode.final_obs_valid = valid
            step_info = final_info if done and final_info else info
            for key, values in episode.infos.items():
                present = key in step_info and step_info.get(f"_{key}", np.ones(self.num_envs, bool))[i]
                values.append(np.array(step_info[key][i]) if present else values[-1])
            if done:
                self.finished.append(episode)
                self.running[i] = self._new_episode(reset_obs[i], info, i)

    # Persistence -----------------------------------------------------------------------------------

    def flush(self, step: int) -> Path | None:
        """Write the finished episodes as one shard named after ``step`` (atomic); returns its path."""
        if not self.finished:
            return None
        episodes, self.finished = self.finished, []
        return self._write_shard(episodes, step)

    def close(self, step: int) -> Path | None:
        """Flush, with the episodes still running written as truncated (training ended them)."""
        for episode in self.running:
            if episode is not None and episode.actions:
                episode.truncations[-1] = True
                self.finished.append(episode)
        self.running = [None] * self.num_envs
        return self.flush(step)

    def _write_shard(self, episodes: list[_Episode], step: int) -> Path:
        name = f"shard_{step:012d}.hdf5"
        if name in self.meta["shards"]:  # two flushes at one step (close right after a checkpoint)
            name = f"shard_{step:012d}_{len(self.meta['shards'])}.hdf5"
        final = self.path / DATA_DIR / name
        tmp = final.with_name(f".{name}.tmp")
        first_id = int(self.meta["total_episodes"])
        steps = 0
        with h5py.File(tmp, "w") as f:
            for k, episode in enumerate(episodes):
                group = f.create_group(f"episode_{first_id + k}")
                group.attrs["id"] = first_id + k
                group.attrs["total_steps"] = len(episode.actions)
                group.attrs["final_obs_valid"] = episode.final_obs_valid
                _dataset(group, "observations", np.stack(episode.observations))
                _dataset(group, "actions", np.stack(episode.actions))
                group.create_dataset("rewards", data=np.asarray(episode.rewards, dtype=np.float32))
                group.create_dataset("terminations", data=np.asarray(episode.terminations, dtype=bool))
                group.create_dataset("truncations", data=np.asarray(episode.truncations, dtype=bool))
                if episode.infos:
                    infos = group.create_group("infos")
                    for key, values in episode.infos.items():
                        infos.create_dataset(key, data=np.stack(values))
                steps += len(episode.actions)
            f.attrs["total_episodes"] = len(episodes)
            f.attrs["total_steps"] = steps
            f.attrs["step"] = step
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self.meta["shards"].append(name)
        self.meta["total_episodes"] = first_id + len(episodes)
        self.meta["total_steps"] = int(self.meta["total_steps"]) + steps
        self._write_metadata()
        return final

    def _write_metadata(self) -> None:
        tmp = self.path / f".{METADATA}.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=str))
        os.replace(tmp, self.path / METADATA)

    def _truncate_after(self, step: int) -> None:
        """Forget shards written after ``step`` (a resumed run collects those steps again)."""
        keep, episodes, steps = [], 0, 0
        for name in self.meta["shards"]:
            shard = self.path / DATA_DIR / name
            with h5py.File(shard, "r") as f:
                if int(f.attrs["step"]) > step:
                    continue
                episodes += int(f.attrs["total_episodes"])
                steps += int(f.attrs["total_steps"])
            keep.append(name)
        for name in set(self.meta["shards"]) - set(keep):
            (self.path / DATA_DIR / name).unlink(missing_ok=True)
        self.meta.update(shards=keep, total_episodes=episodes, total_steps=steps)
        self._write_metadata()


def _dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    # Pixel observations compress well; small vectors are stored plainly (faster to read).
    compress = data.dtype == np.uint8 and data.ndim >= 3
    group.create_dataset(name, data=data, compression="gzip" if compress else None)


def merge_datasets(sources: Iterable[str | Path], out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the episodes of every source (same env and spaces), renumbered, as the dataset ``out``.
    ``out`` may be an existing folder (e.g. holding the runs that collected the sources) but not a dataset."""
    sources = [Path(s) for s in sources]
    metas = [read_metadata(s) for s in sources]
    for src, meta in zip(sources[1:], metas[1:]):
        if meta["env"] != metas[0]["env"] or meta["spaces"] != metas[0]["spaces"]:
            raise DatasetError(f"cannot merge {src} (env {meta['env']!r}) with {sources[0]} (env {metas[0]['env']!r})")
    out = Path(out)
    if (out / METADATA).exists() or (out / DATA_DIR).exists():
        raise DatasetError(f"dataset {out} already exists; choose another path or remove it")
    tmp = out / f".{DATA_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    merged = {**metas[0], "shards": [], "total_episodes": 0, "total_steps": 0,
              "sources": [{k: m.get(k) for k in ("agent", "steps", "seed", "total_steps")} for m in metas],
              **(metadata or {})}
    for k, (src, meta) in enumerate(zip(sources, metas)):
        for shard in meta["shards"]:
            name = f"source{k}_{shard}"
            with h5py.File(src / DATA_DIR / shard, "r") as fin, h5py.File(tmp / name, "w") as fout:
                for attr, value in fin.attrs.items():
                    fout.attrs[attr] = value
                for old in sorted(fin.keys(), key=lambda s: int(s.split("_")[1])):
                    new_id = merged["total_episodes"]
                    fin.copy(fin[old], fout, name=f"episode_{new_id}")
                    fout[f"episode_{new_id}"].attrs["id"] = new_id
                    merged["total_episodes"] += 1
                    merged["total_steps"] += int(fin[old].attrs["total_steps"])
            merged["shards"].append(name)
    os.replace(tmp, out / DATA_DIR)
    meta_tmp = out / f".{METADATA}.tmp"  # written last: a dataset exists once its metadata does
    meta_tmp.write_text(json.dumps(merged, indent=2, default=str))
    os.replace(meta_tmp, out / METADATA)
    return out


__all__ = ["DatasetError", "DatasetWriter", "TransitionDataset", "check_compatible", "load_dataset", "merge_datasets",
           "read_metadata"]
