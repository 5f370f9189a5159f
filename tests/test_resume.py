"""Resuming an online run is exact: N steps in one invocation and N/2 steps, then the same command with N
steps in the same run directory, end with identical checkpoints (networks, optimiser moments, replay data or
the half-collected PPO rollout, running skills, the agent's and the global generators, counters, coverage) and
identical training curves.

A resumed run starts new episodes (in-flight episodes are not saved: README, "Checkpoints are plain state").
The point maze's start is its start cell plus uniform noise; with the noise off and every episode ending at
the resume step, the straight run's autoresets and the resumed run's fresh resets give the same states, so
every difference left is a difference in what the checkpoint restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs.pointmaze
from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.cli import run_main
from runners.logger import read_scalars

# 2 envs, 10-step episodes: both episodes end at every multiple of 20 env steps, the resume step (40) among them.
COMMON = ["env=pointmaze", "env.max_episode_steps=10", "runner.num_envs=2", "progress=false", "device=cpu",
          "threads=1", "log_every=10", "eval.episodes=0", "checkpoint.every=40"]
AGENTS = {
    "sac": ["agent=sac", "agent.hidden_sizes=[16,16]", "agent.batch_size=16", "agent.learning_starts=16"],
    # 6-step rollouts of 2 envs: the resume step (40 = 20 vector steps) is 2 steps into the fourth rollout
    "ppo": ["agent=ppo", "agent.hidden_sizes=[16]", "agent.n_steps=6", "agent.n_minibatches=2", "agent.n_epochs=2"],
    "metra": ["agent=metra", "agent.hidden_sizes=[16,16]", "agent.phi_hidden_sizes=[16,16]", "agent.batch_size=16",
              "agent.learning_starts=16", "agent.train_freq=2"],
}


def flatten(value, prefix: str = "") -> dict[str, object]:
    """A checkpoint as {dotted path: leaf}: tensors, arrays and plain values."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}.{i}").items()}
    return {prefix: value}


def assert_same_checkpoint(a: dict, b: dict) -> None:
    flat_a, flat_b = flatten(a), flatten(b)
    assert flat_a.keys() == flat_b.keys()
    for key, left in flat_a.items():
        right = flat_b[key]
        if isinstance(left, torch.Tensor):
            assert left.dtype == right.dtype and left.shape == right.shape, key
            assert torch.equal(left, right), key
        elif isinstance(left, np.ndarray):
            np.testing.assert_array_equal(left, right, err_msg=key)
        else:
            assert left == right, key


def curves(run_dir, skip: tuple[str, ...] = ("train/steps_per_second",)) -> dict[tuple[str, int], float]:
    """Scalars by (tag, step), without the wall-clock ones."""
    return {(r["tag"], r["step"]): r["value"] for r in read_scalars(run_dir) if r["tag"] not in skip}


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_resumed_run_ends_with_the_checkpoint_of_a_straight_run(agent, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(envs.pointmaze, "START_NOISE", 0.0)
    args = [*COMMON, *AGENTS[agent]]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_main([*args, "steps=80", f"run_dir={straight}"]) == 0, capsys.readouterr().err
    assert run_main([*args, "steps=40", f"run_dir={resumed}"]) == 0, capsys.readouterr().err
    half = load_checkpoint(checkpoint_paths(resumed)[-1])
    assert half["step"] == 40
    assert run_main([*args, "steps=80", f"run_dir={resumed}"]) == 0, capsys.readouterr().err
    assert [p.name for p in checkpoint_paths(resumed)] == ["step_0000000040.pt", "step_0000000080.pt"]
    final = load_checkpoint(checkpoint_paths(straight)[-1])
    assert final["step"] == 80 and final["episodes"] == 8
    assert_same_checkpoint(final, load_checkpoint(checkpoint_paths(resumed)[-1]))
    # the second half changed the agent (the comparison is not of two copies of the first half's state)
    changed = [k for k, v in flatten(half["agent"]).items()
               if isinstance(v, torch.Tensor) and not torch.equal(v, flatten(final["agent"])[k])]
    assert any(k.endswith("weight") for k in changed)
    straight_curves, resumed_curves = curves(straight), curves(resumed)
    assert straight_curves == resumed_curves
    losses = {"sac": "train/critic_loss", "ppo": "train/value_loss", "metra": "train/phi_loss"}[agent]
    assert any(tag == losses and step > 40 for tag, step in straight_curves)
    # coverage (restored from the checkpoint) and the episode counters are among the curves compared
    assert {("train/coverage_total", 80), ("train/coverage_queue", 80), ("train/dropped_episodes", 80),
            ("train/episodes", 80)} <= straight_curves.keys()


def test_resumed_run_logs_the_running_return_of_a_straight_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(envs.pointmaze, "START_NOISE", 0.0)
    args = [*COMMON, "agent=random", "env.goal=[3.5,3.5]", "env.goal_radius=10.0"]  # reward 1 every step
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for run_dir, steps in ((straight, (80,)), (resumed, (40, 80))):
        for n in steps:
            assert run_main([*args, f"steps={n}", f"run_dir={run_dir}"]) == 0, capsys.readouterr().err
    returns = {run: curves(run, skip=("train/steps_per_second",)) for run in (straight, resumed)}
    assert returns[straight][("train/recent_return", 50)] == 10.0
    assert returns[straight] == returns[resumed]
