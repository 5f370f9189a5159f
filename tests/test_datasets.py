"""Datasets of transitions: the writer keeps whole episodes, the reader round-trips them, resume and
mismatches behave (envs.datasets, runners.collect)."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest

from envs import ENVS
from envs.datasets import DatasetError, DatasetWriter, load_dataset, merge_datasets, read_metadata
from runners.cli import run_main
from runners.collect import collect_main

SPEC = ENVS["pointmaze"]
OBS = gym.spaces.Box(-10, 10, (2,), np.float32)
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def _writer(path, num_envs=2, **kw):
    return DatasetWriter(path, SPEC, OBS, ACT, num_envs, {"agent": "test"}, **kw)


def _step(t, done=(False, False), dropped=None):
    """A hand-made vector step of two envs: obs = (t, env), reset observations = (-1, env)."""
    obs = np.array([[t, 0], [t, 1]], np.float32)
    nxt = np.array([[t + 1, 0], [t + 1, 1]], np.float32)
    done = np.array(done)
    reset = np.where(done[:, None], np.array([[-1, 0], [-1, 1]], np.float32), nxt)
    info = {"xy": reset.copy(), "_xy": np.ones(2, bool)}
    if done.any():
        info["final_info"] = {"xy": nxt.copy(), "_xy": done.copy()}
    return {"obs": obs, "action": np.full((2, 2), t, np.float32), "reward": np.array([t, 10 * t], np.float32), "next_obs": nxt,
                "terminated": done, "truncated": np.zeros(2, bool), "info": info, "reset_obs": reset, "dropped": dropped}


def test_writer_round_trip_keeps_whole_episodes(tmp_path):
    w = _writer(tmp_path / "ds")
    w.begin(np.array([[0, 0], [0, 1]], np.float32), {"xy": np.array([[0, 0], [0, 1]], np.float32)})
    w.add(**_step(0))
    w.add(**_step(1, done=(True, False)))
    assert w.flush(2) is not None  # env 0's episode: 2 steps
    w.add(**_step(2))
    w.close(3)  # env 1's 3 steps (truncated) and env 0's second episode (1 step, truncated)
    ds = load_dataset(tmp_path / "ds", SPEC)
    assert len(ds) == 6 and ds.num_episodes == 3
    first = ds.episode_ids == ds.episode_ids[0]
    np.testing.assert_array_equal(ds.observations[first][:, 0], [0, 1])
    np.testing.assert_array_equal(ds.next_observations[first][:, 0], [1, 2])  # final obs, not the reset obs
    assert ds.terminations[first].tolist() == [False, True]
    np.testing.assert_array_equal(ds.infos["next_xy"][first], ds.next_observations[first])
    # the episode that started from the reset observation, and the truncated ones at close
    assert ds.observations[ds.timesteps == 0][:, 0].tolist().count(-1) == 1
    assert ds.truncations.sum() == 2
    np.testing.assert_array_equal(ds.episode_end_index()[:2], [1, 1])
    np.testing.assert_allclose(ds.episode_returns()[0], 0 + 1)
    assert read_metadata(tmp_path / "ds")["total_steps"] == 6


def test_dropped_rows_discard_the_lost_episode(tmp_path):
    w = _writer(tmp_path / "ds")
    w.begin(np.array([[0, 0], [0, 1]], np.float32), {})
    w.add(**_step(0))
    w.add(**_step(1, dropped=np.array([False, True])))  # env 1's episode is lost
    w.add(**_step(2, done=(True, True)))
    w.close(3)
    ds = load_dataset(tmp_path / "ds")
    lengths = np.bincount(ds.episode_ids)
    assert sorted(lengths.tolist()) == [1, 3]  # env 1 kept only the step after the drop


def test_existing_dataset_is_never_overwritten_and_resume_drops_later_shards(tmp_path):
    w = _writer(tmp_path / "ds")
    w.begin(np.zeros((2, 2), np.float32), {})
    w.add(**_step(0, done=(True, True)))
    w.flush(1)
    w.add(**_step(1, done=(True, True)))
    w.flush(2)
    with pytest.raises(DatasetError, match="already exists"):
        _writer(tmp_path / "ds")
    _writer(tmp_path / "ds", resume_step=1)  # resuming from the checkpoint at step 1
    ds = load_dataset(tmp_path / "ds")
    assert len(ds) == 2 and read_metadata(tmp_path / "ds")["shards"] == ["shard_000000000001.hdf5"]


def test_reader_errors_are_one_clear_line(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    w = _writer(tmp_path / "ds")
    w.begin(np.zeros((2, 2), np.float32), {})
    w.add(**_step(0, done=(True, True)))
    w.close(1)
    with pytest.raises(DatasetError, match="collected on env 'pointmaze', not 'quadruped'"):
        load_dataset(tmp_path / "ds", ENVS["quadruped"])
    shard = next((tmp_path / "ds" / "data").iterdir())
    shard.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="cannot read shard"):
        load_dataset(tmp_path / "ds")
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    (tmp_path / "ds" / "metadata.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DatasetError, match="format version 99"):
        load_dataset(tmp_path / "ds")


def test_run_saves_a_dataset_that_matches_its_steps_and_resumes(tmp_path):
    run = tmp_path / "run"
    common = ["agent=random", "env=pointmaze", "env.max_episode_steps=50", "save_dataset=true", f"run_dir={run}",
              "eval.episodes=0", "checkpoint.every=100", "progress=false"]
    assert run_main([*common, "steps=230"]) == 0
    ds = load_dataset(run / "dataset", SPEC)
    assert len(ds) == 230  # 4 whole episodes + the running one, truncated at the end
    same = ds.episode_ids[1:] == ds.episode_ids[:-1]
    np.testing.assert_allclose(ds.next_observations[:-1][same], ds.observations[1:][same])
    np.testing.assert_allclose(ds.infos["xy"], ds.observations[:, :2])
    assert run_main([*common, "steps=330"]) == 0  # resumes at 230 and appends
    assert len(load_dataset(run / "dataset")) == 330


def test_merge_and_collect_presets(tmp_path):
    out = tmp_path / "mix"
    assert collect_main(["preset=mixture", "env=pointmaze", "steps=400", f"out={out}", "env.max_episode_steps=100",
                         "agent.batch_size=32", "agent.learning_starts=100"]) == 0
    ds = load_dataset(out, SPEC)
    assert len(ds) == 400
    assert {s["agent"] for s in ds.metadata["sources"]} == {"random", "metra"}
    with pytest.raises(DatasetError, match="already exists"):
        merge_datasets([out], out)
    assert collect_main(["preset=mixture", "env=pointmaze", "steps=400", f"out={out}"]) == 2  # never overwritten
    with h5py.File(out / "data" / read_metadata(out)["shards"][0], "r") as f:
        assert all(k.startswith("episode_") for k in f)
