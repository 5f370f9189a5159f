"""rl-run / rl-eval end to end: bad input fails cleanly, runs write what they promise, resume continues."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.cli import eval_main, run_main
from runners.logger import read_scalars

# A small, fast experiment: SAC on the point maze with tiny networks and early learning.
FAST = [
    "agent=sac",
    "env=pointmaze",
    "agent.hidden_sizes=[32,32]",
    "agent.learning_starts=100",
    "agent.batch_size=32",
    "eval.episodes=1",
    "log_every=100",
    "progress=false",
    "device=cpu",
]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = run_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("rl-run: error: ") or lines[0].startswith("rl-eval: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["agent=nope"], ["unknown agent 'nope'", "sac", "ppo", "random"]),
        (["env=quadrupd"], ["unknown env 'quadrupd'", "did you mean 'quadruped'", "pointmaze"]),
        (["agent.lrr=0.1"], ["unknown key 'agent.lrr'", "did you mean 'lr'", "batch_size"]),
        (["stepz=10"], ["unknown key 'stepz'", "did you mean 'steps'"]),
        (["steps=-1"], ["steps must be >= 0"]),
        (["steps=abc"], ["steps"]),
        (["runner.backend=mpi"], ["unknown runner.backend 'mpi'", "sync", "async"]),
        (["device=tpu"], ["unknown device 'tpu'", "cuda"]),
        (["agent=sac", "env=minigrid"], ["agent sac on env", "Box"]),
        (["--verbose"], ["unknown option '--verbose'"]),
    ],
)
def test_bad_input_is_one_clear_line(args, needles, tmp_path, capsys):
    extra = [] if any(a.startswith("steps=") for a in args) else ["steps=10"]
    code, _, err = run(args + extra + [f"run_dir={tmp_path / 'r'}"], capsys)
    assert code == 2
    line = error_line(err)
    for needle in needles:
        assert needle in line, line
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(["device=cuda", f"run_dir={tmp_path / 'r'}", "steps=10"], capsys)
    assert code == 2
    assert "no CUDA GPU" in error_line(err)


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "runners.cli", "agent=nope"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("rl-run: error: unknown agent")


def test_run_writes_logs_checkpoint_and_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(FAST + ["steps=300", f"run_dir={run_dir}"], capsys)
    assert code == 0, err
    assert (run_dir / "config.yaml").exists()
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    ckpts = checkpoint_paths(run_dir)
    assert ckpts and ckpts[-1].name == "step_0000000300.pt"
    state = load_checkpoint(ckpts[-1])
    assert state["step"] == 300
    rows = read_scalars(run_dir)
    assert {r["tag"] for r in rows} >= {"train/steps_per_second", "eval/return_mean"}
    assert max(r["step"] for r in rows) == 300

    # Same command with more steps continues the step axis from 300.
    code, out, err = run(FAST + ["steps=600", f"run_dir={run_dir}"], capsys)
    assert code == 0, err
    assert load_checkpoint(checkpoint_paths(run_dir)[-1])["step"] == 600
    rows = read_scalars(run_dir)
    sps = [r["step"] for r in rows if r["tag"] == "train/steps_per_second"]
    assert sps == sorted(sps) and len(sps) == len(set(sps)), "resume must not restart or repeat the step axis"
    assert 300 in sps and min(s for s in sps if s > 300) == 400  # rows up to the checkpoint are kept
    assert "600 steps" in out

    # rl-eval on the run writes its JSON.
    assert eval_main([f"run_dir={run_dir}", "episodes=2"]) == 0
    results = list((run_dir / "eval").glob("returns_*_step600.json"))
    assert len(results) == 1
    record = json.loads(results[0].read_text())
    assert record["step"] == 600 and len(record["results"]["returns"]["returns"]) == 2

    # Zero-shot on another layout of the same env family; a different observation space is refused.
    assert eval_main([f"run_dir={run_dir}", "episodes=1", "env.layout=u"]) == 0
    assert list((run_dir / "eval").glob("returns_pointmaze-u*_step600.json"))
    capsys.readouterr()
    assert eval_main([f"run_dir={run_dir}", "env=quadruped"]) == 2
    assert "trained on" in error_line(capsys.readouterr().err)
    assert eval_main([f"run_dir={run_dir}", "env.layot=u"]) == 2
    assert "unknown key 'env.layot'" in error_line(capsys.readouterr().err)


def test_run_dir_with_other_experiment_is_refused_untouched(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(FAST + ["steps=100", f"run_dir={run_dir}"], capsys)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    code, _, err = run(FAST + ["steps=200", "agent.lr=0.001", f"run_dir={run_dir}"], capsys)
    assert code == 2
    line = error_line(err)
    assert "holds a different experiment" in line and "agent.lr" in line
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before


def test_non_run_directory_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("precious")
    code, _, err = run(FAST + ["steps=10", f"run_dir={tmp_path}"], capsys)
    assert code == 2 and "holds no run" in error_line(err)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_same_seed_same_first_evaluation(tmp_path, capsys):
    args = ["agent=sac", "env=cheetah", "agent.hidden_sizes=[16]", "agent.learning_starts=50",
            "agent.batch_size=16", "eval.episodes=1", "env.max_episode_steps=100", "steps=150",
            "progress=false", "device=cpu"]
    evals = []
    for name in ("a", "b"):
        assert run(args + [f"run_dir={tmp_path / name}"], capsys)[0] == 0
        evals.append([r["value"] for r in read_scalars(tmp_path / name) if r["tag"] == "eval/return_mean"])
    assert evals[0] == evals[1]


def test_rl_eval_bad_input(tmp_path, capsys):
    assert eval_main([f"run_dir={tmp_path / 'missing'}"]) == 2
    assert "holds no run" in error_line(capsys.readouterr().err)
    assert eval_main(["run_dir=x", "suite=nope"]) == 2
    assert "unknown suite 'nope'" in error_line(capsys.readouterr().err)
    assert eval_main(["episodes=3"]) == 2
    assert "run_dir=DIR is required" in error_line(capsys.readouterr().err)


def test_ray_backend_gets_at_least_one_env_per_worker():
    from runners.config import compose_config
    from runners.train import num_envs_for

    assert num_envs_for(compose_config(["agent=sac", "runner.backend=ray", "runner.num_workers=2"])) == 2
    assert num_envs_for(compose_config(["agent=ppo", "runner.backend=ray", "runner.num_workers=2"])) == 8
    assert num_envs_for(compose_config(["agent=sac", "runner.num_workers=2"])) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["agent=metra", "env=ant"], {"preset": "metra_ant", "agent.skill_dim": 2, "env.xy_in_obs": True,
                                      "env.max_episode_steps": 200}),
        (["agent=lsd", "env=halfcheetah"], {"preset": "lsd_halfcheetah", "agent.skill_dim": 16,
                                            "agent.discrete_skills": True}),
        (["agent=metra", "env=quadruped"], {"preset": "metra_quadruped", "agent.skill_dim": 4, "env.pixels": False,
                                            "env.action_repeat": 2}),
        (["agent=metra", "env=quadruped", "preset=metra_quadruped_paper"],
         {"preset": "metra_quadruped_paper", "env.pixels": True, "agent.lr": 1e-4, "agent.phi_hidden_sizes": [1024, 1024]}),
        (["agent=metra", "env=ant", "agent.skill_dim=5"], {"preset": "metra_ant", "agent.skill_dim": 5}),  # CLI wins
        (["agent=metra", "env=ant", "preset=none"], {"preset": "none", "env.xy_in_obs": False}),
        (["agent=sac", "env=ant"], {"preset": "none", "env.xy_in_obs": False}),
    ],
)
def test_presets_follow_agent_and_env(overrides, expected):
    from omegaconf import OmegaConf

    from runners.config import compose_config

    cfg = compose_config(overrides)
    for key, value in expected.items():
        got = OmegaConf.select(cfg, key)
        assert (list(got) if isinstance(value, list) else got) == value, key


def test_preset_for_another_agent_is_a_clear_error(capsys):
    assert run_main(["agent=sac", "env=ant", "preset=metra_ant"]) == 2
    assert "preset metra_ant is for agent=metra env=ant" in capsys.readouterr().err
