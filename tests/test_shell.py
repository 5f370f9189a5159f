"""The run shell's own behaviour: Ctrl-C is taken between two units of work, so an interrupted run always
resumes (a PPO run interrupted during its update used to leave a full, unlearnt rollout buffer in its last
checkpoint and could never resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.shell import deferred_interrupt


def test_first_sigint_is_deferred_second_one_raises():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever ran pytest
    try:
        check_deferred_interrupt()
    finally:
        signal.signal(signal.SIGINT, previous)


def check_deferred_interrupt():
    with deferred_interrupt() as requested:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes of this thread
        assert requested.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_sigint_keeps_ignoring_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, a background job
    try:
        with deferred_interrupt() as requested:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not requested.is_set()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_ppo_update_leaves_a_resumable_run(tmp_path):
    run_dir = tmp_path / "run"
    # 8 envs x 32 steps per rollout; many epochs make the update most of the time, where SIGINT lands.
    # Ctrl-C as in a terminal, even where the test runner was started with SIGINT ignored (a background job).
    child = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from runners.cli import run_main; raise SystemExit(run_main())")
    args = [sys.executable, "-c", child, "agent=ppo",
            "env=minigrid", "steps=1024", "agent.n_steps=32", "agent.n_epochs=20", "checkpoint.every=256", "threads=1",
            "eval.episodes=0", "progress=false", f"run_dir={run_dir}"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint_paths(run_dir) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint_paths(run_dir), "no checkpoint appeared"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    last = load_checkpoint(checkpoint_paths(run_dir)[-1])
    rollout = last["agent"]["rollout"]
    assert int(last["step"]) < 1024
    # Saved between units: never a full rollout buffer that was not learnt from.
    assert int(rollout["step"]) < 32

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert int(load_checkpoint(checkpoint_paths(Path(run_dir))[-1])["step"]) == 1024
