"""rl-sweep: bad sweep specs fail before anything starts; grid and random expansion; the summary's statistics
and files; a trial whose worker process is killed on a real local Ray cluster resumes from its checkpoint;
and a sweep whose driver is killed completes when the same command is run again, without rerunning the
trials that had finished."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from runners.sweep import expand, main, parse_args
from runners.sweep_summary import bootstrap_ci, summarise

# Not resolved: the sweep's subprocesses import the suite from this checkout.
REPO = Path(__file__).absolute().parents[1]
RAY_CLI = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# A small SAC on the point maze: ~200 steps/s on one core, a checkpoint every 100 steps.
TINY = ["agent=sac", "env=pointmaze", "agent.hidden_sizes=[16,16]", "agent.learning_starts=50", "agent.batch_size=16",
        "eval.episodes=1", "log_every=100", "checkpoint.every=100", "device=cpu"]


# ---- specs and expansion (no Ray) --------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["seed="], "seed= has no value"),
    (["seed=0,1", "agent.batch_sise=32,64"], "unknown key 'agent.batch_sise' (did you mean 'batch_size'?)"),
    (["agent=sac,dqn"], "unknown agent 'dqn'"),
    (["agent=dqn"], "unknown agent 'dqn'"),
    (["sweep.serch=random"], "unknown key 'sweep.serch' (did you mean 'search'?); valid keys of sweep: search,"),
    (["sweep.search=bayes"], "unknown sweep.search 'bayes'; choose one of: grid, random"),
    (["sweep.cpus_per_trial=many"], "sweep.cpus_per_trial:"),
    (["sweep.gpus_per_trial=64"], "sweep.gpus_per_trial=64 but this machine has"),
    (["sweep.cpus_per_trial=4096"], "sweep.cpus_per_trial=4096 but this machine has"),
    (["sweep.max_failures=-1"], "sweep.max_failures must be >= 0"),
    (["agent.lr=interval(1e-4,1e-3)"], "interval() is a random draw; add sweep.search=random"),
    (["sweep.num_samples=4"], "sweep.num_samples is for sweep.search=random"),
    (["seed=0,0"], "repeated values"),
    (["run_dir=runs/x"], "run_dir is set by rl-sweep"),
    (["sweep.storage=s3://bucket/sweeps"], "object-store URIs are not supported"),
    (["--resume"], "unknown option '--resume'"),
])
def test_bad_specs_fail_before_anything_starts(args, message, tmp_path, capsys):
    storage = tmp_path / "sweeps"
    given = {a.split("=")[0] for a in args}
    defaults = [a for a in ("agent=sac", "env=pointmaze", f"sweep.storage={storage}") if a.split("=")[0] not in given]
    assert main([*defaults, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rl-sweep: error: "), err
    assert message in err[0]
    assert not storage.exists(), "nothing is written for a bad sweep"


def test_grid_and_random_expansion():
    grid = parse_args(["seed=0,1", "agent.batch_size=range(32,34)", "agent.hidden_sizes=choice([8],[16,16])"])
    points = expand(grid)
    assert len(points) == 8 and points[0] == {"seed": "0", "agent.batch_size": "32", "agent.hidden_sizes": "[8]"}
    assert len({tuple(p.items()) for p in points}) == 8

    argv = ["seed=0,1", "agent.lr=tag(log,interval(1e-4,1e-2))", "agent.batch_size=choice(32,64)",
            "sweep.search=random", "sweep.num_samples=5"]
    random = expand(parse_args(argv))
    assert len(random) == 10
    for a, b in zip(random[::2], random[1::2]):  # every sampled configuration runs with every seed
        assert (a["seed"], b["seed"]) == ("0", "1") and a["agent.lr"] == b["agent.lr"]
        assert a["agent.batch_size"] == b["agent.batch_size"] in ("32", "64")
        assert 1e-4 <= float(a["agent.lr"]) <= 1e-2
    assert len({p["agent.lr"] for p in random}) == 5
    assert expand(parse_args(argv)) == random, "the same command draws the same trials"
    assert expand(parse_args([*argv, "sweep.sample_seed=1"])) != random


# ---- the summary ---------------------------------------------------------------------------------------


def _write_run(run_dir: Path, finals: dict[str, float], steps: int = 300) -> None:
    run_dir.mkdir(parents=True)
    with open(run_dir / "scalars.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "tag", "value", "wall_time"])
        for step in range(100, steps + 1, 100):
            for tag, final in finals.items():
                writer.writerow([step, tag, final * step / steps, 0.0])


def test_summary_groups_seeds_and_writes_table_csv_and_plots(tmp_path):
    finals = {("2", "0"): 1.0, ("2", "1"): 2.0, ("2", "2"): 6.0, ("4", "0"): 10.0, ("4", "1"): 12.0}
    trials = []
    for i, ((dim, seed), value) in enumerate(finals.items()):
        run = f"runs/{i:03d}"
        trials.append({"index": i, "point": {"agent.skill_dim": dim, "seed": seed}, "run_dir": run})
        _write_run(tmp_path / run, {"eval/return_mean": value, "train/recent_return": -value})
    trials.append({"index": 5, "point": {"agent.skill_dim": "8", "seed": "0"}, "run_dir": "runs/missing"})
    (tmp_path / "sweep.json").write_text(json.dumps({"trials": trials}))

    out = summarise(tmp_path)
    rows = {(r["configuration"], r["metric"]): r for r in out["rows"]}
    r = rows[("agent.skill_dim=2", "eval/return_mean")]
    assert r["n"] == 3 and r["seeds"] == "0 1 2" and r["steps"] == 300
    assert r["mean"] == pytest.approx(3.0) and r["std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    # three seeds: 1 in 27 resamples is all 1s (3.7% > 2.5%) and 1 in 27 all 6s, so the 95% percentile
    # interval of the bootstrap mean is exactly [1, 6]
    assert (r["ci_low"], r["ci_high"]) == (1.0, 6.0)
    assert rows[("agent.skill_dim=4", "train/recent_return")]["mean"] == pytest.approx(-11.0)
    assert rows[("agent.skill_dim=8", "eval/return_mean")]["n"] == 0, "a run that never logged counts as no seed"

    with open(out["csv_path"], newline="") as f:
        table = list(csv.DictReader(f))
    assert {"configuration", "agent.skill_dim", "metric", "mean", "std", "ci_low", "ci_high"} <= set(table[0])
    assert "| agent.skill_dim=2 | eval/return_mean | 3 | 300 | 3 |" in out["markdown_path"].read_text()
    assert sorted(p.name for p in out["plots"]) == ["eval_return_mean.png", "train_recent_return.png"]
    assert all(p.stat().st_size > 1000 for p in out["plots"])


def test_bootstrap_interval():
    # Exact on a small sample: the bootstrap mean of [0, 0, 0, 1] is Binomial(4, 1/4) / 4; P(0) = 0.32 and
    # P(mean >= 0.75) = 0.051 > 0.025 > P(1) = 0.004, so the 95% percentile interval is [0, 0.75].
    assert bootstrap_ci(np.array([0.0, 0.0, 0.0, 1.0])) == (0.0, 0.75)
    assert bootstrap_ci(np.array([0.0, 0.0, 0.0, 1.0]), level=0.5) == (0.0, 0.5)  # quartiles: P(0) = 0.32, P(<= 0.25) = 0.74
    # A larger sample against an independent, 40x larger resampling of the same percentile interval: the
    # Monte-Carlo error of 10,000 resamples is ~0.005 here, while the 90% interval is 0.05 narrower.
    values = np.random.default_rng(0).normal(5.0, 1.0, size=40)
    low, high = bootstrap_ci(values)
    means = values[np.random.default_rng(123).integers(0, 40, size=(400_000, 40))].mean(axis=1)
    ref_low, ref_high = np.quantile(means, [0.025, 0.975])
    assert low == pytest.approx(ref_low, abs=0.02) and high == pytest.approx(ref_high, abs=0.02)
    assert low < values.mean() < high
    assert np.isnan(bootstrap_ci(np.array([1.0]))[0])
    band_low, band_high = bootstrap_ci(np.stack([values, values + 1]).T)  # per column
    assert band_low.shape == (2,) and band_high[1] == pytest.approx(high + 1)
    assert band_low[0] == pytest.approx(low)


# ---- real sweeps ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stop_group(proc: subprocess.Popen, drain: float) -> None:
    """Stop a process started in its own session: SIGTERM to its leader (a ``ray start --block`` head drains
    its node; a SIGTERM to the whole group would stop the GCS the drain needs), up to ``drain`` seconds to
    exit, then SIGKILL to the process group for whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=drain)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _sweep(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "a") as f:
        return subprocess.Popen([sys.executable, "-m", "runners.sweep", *args], cwd=REPO, env=env or ENV, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    finally:
        _stop_group(proc, drain=5)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _trial_record(sweep: Path, index: int) -> dict | None:
    found = list(sweep.glob(f"*/trials/{index:03d}_*.json"))
    return json.loads(found[0].read_text()) if found else None


def _run_dir(sweep: Path, index: int) -> Path:
    return next(sweep.glob(f"*/runs/{index:03d}_*"))


def _checkpointed(sweep: Path, index: int) -> dict | None:
    """The trial's record once its run directory holds a checkpoint."""
    record = _trial_record(sweep, index)
    found = list(sweep.glob(f"*/runs/{index:03d}_*/checkpoints/step_*.pt"))
    return record if record and found else None


def _checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def _assert_step_axis(run_dir: Path, steps: int, resumed: int) -> None:
    """One ``train/steps_per_second`` row per logged step, in order, up to the end: the resumed attempt
    continued the step axis, keeping the rows up to its checkpoint and dropping those the killed attempt
    wrote after it."""
    with open(run_dir / "scalars.csv", newline="") as f:
        logged = [int(r["step"]) for r in csv.DictReader(f) if r["tag"] == "train/steps_per_second"]
    assert logged == list(range(100, steps + 1, 100)), (resumed, logged)


def _process_gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.timeout(240)
def test_killed_trial_worker_resumes_from_checkpoint_on_a_cluster(tmp_path):
    """A `ray start` head on loopback; the sweep's driver joins it; trial 0's worker process is SIGKILLed after
    its first checkpoint; Tune restarts the trial, which continues its run directory from the checkpoint."""
    port = _free_port()
    env = {**ENV, "RAY_AUTH_MODE": "token"}
    temp_dir = tempfile.mkdtemp(prefix="rsw", dir="/tmp")  # short: Ray's socket paths live under it
    head_log = tmp_path / "head.log"
    with open(head_log, "w") as log:
        head = subprocess.Popen([RAY_CLI, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                                 f"--temp-dir={temp_dir}"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        _wait(lambda: True if "Ray runtime started" in head_log.read_text() else None, 90, "the Ray head", head)
        steps, storage, log = 600, tmp_path / "sweeps", tmp_path / "sweep.log"
        args = [*TINY, "seed=0,1", f"steps={steps}", f"ray.address=127.0.0.1:{port}", f"sweep.storage={storage}"]
        driver = _sweep(args, log, env)
        first = _wait(lambda: _checkpointed(storage, 0), 90, "trial 0's first checkpoint", driver)
        killed_at = _checkpoint_steps(_run_dir(storage, 0))[-1]
        pid = first["attempts"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        _finish(driver, log, timeout=100)

        record = _trial_record(storage, 0)
        assert record["finished"] and len(record["attempts"]) == 2
        assert record["attempts"][1]["pid"] != pid
        resumed = record["attempts"][1]["start_step"]
        assert killed_at <= resumed < steps, f"resumed at {resumed}, the kill came after step {killed_at}"
        assert record["final"]["resumed_from"] == resumed and record["final"]["step"] == steps
        _assert_step_axis(_run_dir(storage, 0), steps, resumed)
        history = yaml.safe_load((_run_dir(storage, 0) / "overrides.yaml").read_text())
        assert len(history) == 2, "the run directory was continued, not started again"
        assert len(_trial_record(storage, 1)["attempts"]) == 1
        summary = next(storage.glob("*/summary/summary.md")).read_text()
        assert "| all | eval/return_mean | 2 | 600 |" in summary
    finally:
        if driver is not None and driver.poll() is None:
            _stop_group(driver, drain=5)
        _stop_group(head, drain=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.timeout(240)
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    """Two trials run side by side in the embedded Ray, a short one (trial 0) and a long one (trial 1); the
    driver is SIGKILLed once trial 0 has finished and trial 1 has checkpointed; the same command then
    completes trial 1 from its checkpoint and leaves trial 0 alone."""
    steps, storage, log = 1200, tmp_path / "sweeps", tmp_path / "sweep.log"
    args = [*TINY, "seed=0", f"steps=300,{steps}", "ray.num_cpus=2", f"sweep.storage={storage}"]

    def interruptible() -> dict | None:
        done, running = _trial_record(storage, 0), _checkpointed(storage, 1)
        return running if done and done.get("finished") and running and not running.get("finished") else None

    driver = _sweep(args, log)
    try:
        running = _wait(interruptible, 100, "trial 0 to finish and trial 1 to checkpoint", driver)
        os.kill(driver.pid, signal.SIGKILL)  # no chance to save anything
        driver.wait()
    finally:
        _stop_group(driver, drain=0)  # the embedded Ray's own processes
    # The trial's worker would exit by itself once it notices that its Ray is gone; do not wait for that.
    with contextlib.suppress(ProcessLookupError):
        os.kill(running["attempts"][0]["pid"], signal.SIGKILL)
    _wait(lambda: _process_gone(running["attempts"][0]["pid"]), 30, "the trial's worker to exit")
    done_before = _trial_record(storage, 0)

    again = _sweep(args, log)
    _finish(again, log, timeout=100)
    assert "resuming the sweep" in log.read_text()
    assert _trial_record(storage, 0) == done_before, "a finished trial is not run again"
    assert len(yaml.safe_load((_run_dir(storage, 0) / "overrides.yaml").read_text())) == 1
    record = _trial_record(storage, 1)
    assert record["finished"] and len(record["attempts"]) == 2
    resumed = record["attempts"][1]["start_step"]
    assert 0 < resumed < steps
    _assert_step_axis(_run_dir(storage, 1), steps, resumed)
    assert (next(storage.glob("*/summary")) / "train_recent_return.png").exists()
