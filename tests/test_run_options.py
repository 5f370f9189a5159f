"""rl-run's run-level options and logged counters, each checked on a real run: ``checkpoint.keep``,
``resume=force``, ``threads=``, ``train/coverage_*`` (and their restore on resume), ``train/dropped_episodes``
with a rollout worker killed mid-run, and the offline agents' one-line refusals."""

from __future__ import annotations

import os
import signal

import pytest
import torch
import yaml

from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.cli import run_main
from runners.logger import read_scalars

TINY_SAC = ["agent=sac", "env=pointmaze", "agent.hidden_sizes=[16]", "agent.batch_size=16", "agent.learning_starts=20",
            "runner.num_envs=2", "progress=false", "device=cpu", "eval.episodes=0"]


def scalars(run_dir, tag: str) -> dict[int, float]:
    return {r["step"]: r["value"] for r in read_scalars(run_dir) if r["tag"] == tag}


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("keep", [1, 3])
def test_checkpoint_keep_leaves_the_newest(keep, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [*TINY_SAC, "steps=60", "checkpoint.every=10", f"checkpoint.keep={keep}", "log_every=30", f"run_dir={run_dir}"]
    assert run_main(args) == 0, capsys.readouterr().err
    expected = [f"step_{s:010d}.pt" for s in (10, 20, 30, 40, 50, 60)[-keep:]]
    assert [p.name for p in checkpoint_paths(run_dir)] == expected
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_resume_force_continues_a_changed_experiment_and_records_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [*TINY_SAC, "log_every=20", "checkpoint.every=20", f"run_dir={run_dir}"]
    assert run_main([*args, "steps=40"]) == 0, capsys.readouterr().err
    assert run_main([*args, "steps=80", "agent.lr=0.001"]) == 2
    line = error_line(capsys)
    assert "holds a different experiment" in line and "agent.lr" in line
    assert run_main([*args, "steps=80", "agent.lr=0.001", "resume=force"]) == 0, capsys.readouterr().err
    assert load_checkpoint(checkpoint_paths(run_dir)[-1])["step"] == 80
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["agent"]["lr"] == 0.001  # the new config is recorded
    history = yaml.safe_load((run_dir / "overrides.yaml").read_text())
    assert len(history) == 2 and "agent.lr=0.001" in history[1]["overrides"]
    steps = sorted(scalars(run_dir, "train/episodes"))
    assert steps == [20, 40, 60, 80]  # one step axis, continued from 40


def test_threads_sets_torch_threads_and_changing_it_still_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [*TINY_SAC, "log_every=20", "checkpoint.every=20", f"run_dir={run_dir}"]
    try:
        assert run_main([*args, "steps=20", "threads=2"]) == 0, capsys.readouterr().err
        assert torch.get_num_threads() == 2
        assert run_main([*args, "steps=40", "threads=1"]) == 0, capsys.readouterr().err  # not a different experiment
        assert torch.get_num_threads() == 1
        assert load_checkpoint(checkpoint_paths(run_dir)[-1])["step"] == 40
        assert run_main([*args, "steps=60", "threads=0"]) == 2
        assert "threads must be >= 1" in error_line(capsys)
    finally:
        torch.set_num_threads(1)


def test_training_coverage_is_logged_and_restored_on_resume(tmp_path, capsys):
    """The point maze reports x-y: coverage counts the unit cells its finished episodes visited, so it can only
    grow and stays within the open maze's 25 cells; a resumed run continues the count, not from zero."""
    run_dir = tmp_path / "run"
    args = [*TINY_SAC, "env.max_episode_steps=20", "log_every=40", "checkpoint.every=80", f"run_dir={run_dir}"]
    assert run_main([*args, "steps=160"]) == 0, capsys.readouterr().err
    first = scalars(run_dir, "train/coverage_total")
    assert sorted(first) == [40, 80, 120, 160] and scalars(run_dir, "train/coverage_queue").keys() == first.keys()
    assert 1 <= first[40] <= first[80] <= first[160] <= 25
    saved = load_checkpoint(checkpoint_paths(run_dir)[-1])["coverage"]
    assert run_main([*args, "steps=200"]) == 0, capsys.readouterr().err
    resumed = scalars(run_dir, "train/coverage_total")
    assert resumed[200] >= first[160]  # restored and counting on (tests/test_resume.py checks it exactly)
    assert load_checkpoint(checkpoint_paths(run_dir)[-1])["coverage"].keys() == saved.keys()
    assert scalars(run_dir, "train/dropped_episodes") == {40: 0.0, 80: 0.0, 120: 0.0, 160: 0.0, 200: 0.0}


@pytest.mark.timeout(180)
def test_dropped_episodes_count_a_killed_rollout_worker(tmp_path, monkeypatch):
    """Ray back-end, two workers of one env each: killing worker 0 after the first log costs its running
    episode, which ``train/dropped_episodes`` counts from then on, and the run finishes."""
    import ray

    from runners import ray_rollout
    from runners.config import compose_config
    from runners.train import TrainHooks, train

    made = []
    init = ray_rollout.RayVectorEnv.__init__

    def remember(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ray_rollout.RayVectorEnv, "__init__", remember)

    class KillOnce(TrainHooks):
        def on_log(self, step, values):
            if step == 20:
                os.kill(made[0].worker_pids()[0], signal.SIGKILL)

    run_dir = tmp_path / "run"
    overrides = ["agent=random", "env=pointmaze", "env.max_episode_steps=50", "runner.backend=ray", "runner.num_envs=2",
                 "runner.num_workers=2", "ray.num_cpus=2", "steps=60", "log_every=20", "eval.episodes=0",
                 "progress=false", f"run_dir={run_dir}"]
    started = ray.is_initialized()
    try:
        result = train(compose_config(overrides), overrides, KillOnce())
    finally:
        if not started and ray.is_initialized():
            ray.shutdown()
    assert result.steps == 60
    assert made[0].restarts == [1, 0]
    assert scalars(run_dir, "train/dropped_episodes") == {20: 0.0, 40: 1.0, 60: 1.0}


@pytest.mark.parametrize("extra, needle", [
    (["save_dataset=true"], "learns offline and collects no transitions; drop save_dataset=true"),
    (["curriculum=dr"], "learns offline from a dataset; it takes no curriculum"),
])
def test_offline_agents_refuse_a_curriculum_or_save_dataset_in_one_line(extra, needle, tmp_path, capsys):
    run_dir = tmp_path / "run"
    for agent in ("hilp", "gcbc"):
        args = [f"agent={agent}", "env=pointmaze", f"dataset={tmp_path / 'data'}", "steps=5", "progress=false",
                f"run_dir={run_dir}", *extra]
        assert run_main(args) == 2
        line = error_line(capsys)
        assert line == f"rl-run: error: agent {agent} {needle}"
        assert not run_dir.exists()
