"""The rollout engine's back-ends: sync, async and Ray give the same transitions (episode ends included),
per-env levels reach every sub-env, a killed or crashed Ray worker costs only its episodes (flagged
dropped and counted), and a training run works against a real multi-node local Ray cluster."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import ray

import envs
from envs.base import EnvSpec
from runners.ray_rollout import RayVectorEnv, merge_infos, split_envs
from runners.rollout import EpisodeTracker, collect_step, make_vector_env, reset_with_levels

BACKENDS = ("sync", "async", "ray")
REPO = Path(__file__).resolve().parents[1]
RAY_CLI = str(Path(sys.executable).with_name("ray"))  # the `ray` script of this interpreter's environment

# ---- a tiny level-parameterised env ------------------------------------------------------------------

LEVEL_ENV_ID = "test/LevelCounter-v0"
CRASH_ACTION = 9.0  # an action at or above this makes the env raise (a crashed env)


class LevelCounterEnv(gym.Env):
    """An episode lasts ``level + 1`` steps and ends by termination for odd levels, by truncation for even
    ones. Observation ``(level, t, u)`` with ``u`` drawn at reset (so seeding shows); reward
    ``level * action + t``. Info: ``level`` always, ``even_t`` only on even steps (a sparse key). The level
    comes from ``reset(options={"level": ...})``, else from ``next_level`` (used once), else it is drawn."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    next_level: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.u = 0, float(self.np_random.random())
        if options and "level" in options:
            self.level = int(options["level"])
        elif self.next_level is not None:
            self.level, self.next_level = int(self.next_level), None
        else:
            self.level = int(self.np_random.integers(1, 5))
        return self._obs(), {"level": self.level}

    def step(self, action):
        if action[0] >= CRASH_ACTION:
            raise RuntimeError("the env crashed")
        self.t += 1
        reward = self.level * float(action[0]) + self.t
        ended = self.t > self.level
        info: dict[str, Any] = {"level": self.level}
        if self.t % 2 == 0:
            info["even_t"] = self.t
        return self._obs(), reward, ended and self.level % 2 == 1, ended and self.level % 2 == 0, info

    def _obs(self) -> np.ndarray:
        return np.array([self.level, self.t, self.u], dtype=np.float32)


def _register_level_env() -> None:
    if LEVEL_ENV_ID not in gym.registry:
        gym.register(LEVEL_ENV_ID, entry_point=LevelCounterEnv)


_register_level_env()


@dataclass
class LevelCounterSpec(EnvSpec):
    name: str = "level_counter"

    def gym_id(self) -> str:
        return LEVEL_ENV_ID

    def make(self, render_mode: str | None = None, **overrides: Any) -> gym.Env:
        _register_level_env()  # in whichever process builds it: a Ray worker or an async subprocess
        return super().make(render_mode, **overrides)


# Ship this module's env and spec to Ray workers and async subprocesses by value: they cannot import a test
# file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---- helpers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    """One embedded Ray for this file's Ray tests (RayVectorEnv reuses it), shut down afterwards."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield
    ray.shutdown()


def make(spec: EnvSpec, num_envs: int, backend: str, num_workers: int = 2) -> gym.vector.VectorEnv:
    return make_vector_env(spec, num_envs, backend, seed=0, num_workers=num_workers)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive equality of step results: arrays (object arrays element by element), dicts, scalars."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a} != {b}"


def record(envs_: gym.vector.VectorEnv, seed: int, actions: np.ndarray) -> list[Any]:
    out = [envs_.reset(seed=seed)]
    out += [envs_.step(a) for a in actions]
    envs_.close()
    return out


class ScriptedAgent:
    """Plays given actions and records what the runner hands it."""

    def __init__(self, actions: list[np.ndarray]):
        self.actions = list(actions)
        self.batches: list[Any] = []
        self.started: list[np.ndarray] = []

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.actions.pop(0)

    def observe(self, batch) -> dict[str, float]:
        self.batches.append(batch)
        return {}

    def reset_episodes(self, done: np.ndarray) -> None:
        self.started.append(done.copy())


# ---- tests -------------------------------------------------------------------------------------------


def test_split_and_merge_infos():
    assert split_envs(5, 2) == [range(3), range(3, 5)]
    assert split_envs(4, 4) == [range(i, i + 1) for i in range(4)]
    with pytest.raises(ValueError):
        split_envs(2, 3)
    a = {"x": np.array([1, 2]), "_x": np.array([True, True]),
         "d": {"y": np.array([0.5, 0]), "_y": np.array([True, False])}, "_d": np.array([True, False])}
    b = {"z": np.array([None], dtype=object), "_z": np.array([True])}
    merged = merge_infos([a, b], [2, 1])
    assert_same(merged, {
        "x": np.array([1, 2, 0]), "_x": np.array([True, True, False]),
        "d": {"y": np.array([0.5, 0, 0]), "_y": np.array([True, False, False])},
        "_d": np.array([True, False, False]),
        "z": np.array([None, None, None], dtype=object), "_z": np.array([False, False, True]),
    })


@pytest.mark.parametrize("env", ["pointmaze", "level_counter"])
def test_backends_give_the_same_transitions(env, ray_local):
    """Same seeds and actions -> the same obs, rewards, ends, final_obs and infos in every back-end, with an
    uneven split of 5 envs over 2 Ray workers and several episode ends (terminations and truncations)."""
    if env == "level_counter":
        spec: EnvSpec = LevelCounterSpec()
    else:
        spec = dataclasses.replace(envs.ENVS["pointmaze"], max_episode_steps=4)
    n, steps = 5, 12
    shape = (steps, n, *spec.make().action_space.shape)
    actions = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    runs = {backend: record(make(spec, n, backend), seed=3, actions=actions) for backend in BACKENDS}
    ray_calls = RayVectorEnv(spec, n, num_workers=2, local_channel=False)
    runs["ray calls"] = record(ray_calls, seed=3, actions=actions)
    ends = sum(int(np.sum(r[2] | r[3])) for r in runs["sync"][1:])
    assert ends >= n, "the rollout should cross several episode ends"
    assert any("final_obs" in r[4] for r in runs["sync"][1:])
    for backend in ("async", "ray", "ray calls"):
        for t, (want, got) in enumerate(zip(runs["sync"], runs[backend])):
            for i, (w, g) in enumerate(zip(want, got)):
                assert_same(w, g, f"{backend}, step {t}, item {i}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_env_levels_reach_each_env(backend, ray_local):
    """reset_with_levels gives env i level i (seeded as a plain reset would be); levels queued with set_attr
    start each env's next episode; get_attr and call reach every sub-env."""
    levels, queued = [1, 2, 3, 4, 1], [4, 3, 2, 1, 3]
    with_levels = make(LevelCounterSpec(), len(levels), backend)
    obs, info = reset_with_levels(with_levels, seed=7, levels=levels)
    assert obs[:, 0].tolist() == levels and info["level"].tolist() == levels and info["_level"].all()
    seeded = make(LevelCounterSpec(), len(levels), "sync")
    plain_obs, _ = seeded.reset(seed=7)
    assert np.array_equal(obs[:, 2], plain_obs[:, 2]), "env i is seeded with seed + i, as without levels"
    with_levels.set_attr("next_level", queued)
    # The first episode lasts level + 1 steps and ends by termination for odd levels, truncation for even;
    # after 5 steps every env has moved on to its queued level exactly once.
    steps = [with_levels.step(np.zeros((len(levels), 1), np.float32)) for _ in range(5)]
    terminated = np.array([s[2] for s in steps])
    truncated = np.array([s[3] for s in steps])
    first_end = np.argmax(terminated | truncated, axis=0) + 1
    assert first_end.tolist() == [lv + 1 for lv in levels]
    assert terminated[first_end - 1, range(len(levels))].tolist() == [lv % 2 == 1 for lv in levels]
    assert list(with_levels.get_attr("level")) == queued
    assert np.array_equal(np.stack(with_levels.call("_obs")), steps[-1][0])
    if backend == "ray":  # the Ray back-end takes the per-env list in reset's options directly
        obs2, _ = with_levels.reset(seed=7, options={"level": levels})
        assert np.array_equal(obs, obs2)
        with pytest.raises(ValueError, match="one level per env"):
            with_levels.reset(options={"level": levels[:2]})
    with_levels.close()
    seeded.close()


@pytest.mark.parametrize("local_channel", [True, False], ids=["channel", "ray_calls"])
def test_lost_worker_rows_are_dropped_and_counted(local_channel, ray_local, caplog):
    """A killed worker process and a crashed env each cost only their worker's episodes: full batch, rows
    flagged dropped with the new episodes' first observations, counted by the tracker, and the run goes on."""
    n = 4
    vec = RayVectorEnv(LevelCounterSpec(), n, num_workers=2, seed=0, local_channel=local_channel)
    zero = np.zeros((n, 1), np.float32)
    crash = zero.copy()
    crash[3] = CRASH_ACTION
    agent = ScriptedAgent([zero, zero, zero, crash, zero, zero, zero] + [crash] * 3)
    tracker = EpisodeTracker(n)
    obs, _ = vec.reset(seed=0)
    obs, _, info = collect_step(agent, vec, obs, True, tracker)
    assert "dropped" not in info

    os.kill(vec.worker_pids()[0], signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="runners.ray_rollout"):
        obs, _, info = collect_step(agent, vec, obs, True, tracker)
    assert "rollout worker 0" in caplog.text
    batch = agent.batches[-1]
    assert batch.dropped.tolist() == info["_dropped"].tolist() == [True, True, False, False]
    assert batch.reward[:2].tolist() == [0, 0]
    assert not batch.terminated[:2].any() and not batch.truncated[:2].any()
    assert obs[:2, 1].tolist() == [0, 0], "the lost envs' rows carry their new episodes' first observations"
    assert tracker.dropped_episodes == 2 and agent.started[-1][:2].all()
    assert vec.restarts == [1, 0]

    obs, _, info = collect_step(agent, vec, obs, True, tracker)  # the replacement steps normally
    assert "dropped" not in info and obs[:2, 1].tolist() == [1, 1]

    obs, _, info = collect_step(agent, vec, obs, True, tracker)  # env 3 raises: worker 1 is replaced
    assert info["dropped"].tolist() == [False, False, True, True] and tracker.dropped_episodes == 4
    assert vec.restarts == [1, 1]
    obs, _, info = collect_step(agent, vec, obs, True, tracker)
    assert "dropped" not in info

    # A worker found dead outside a step (here by set_attr) is replaced at the next step, rows dropped.
    os.kill(vec.worker_pids()[1], signal.SIGKILL)
    vec.set_attr("next_level", [1] * n)
    obs, _, info = collect_step(agent, vec, obs, True, tracker)
    assert info["dropped"].tolist() == [False, False, True, True] and tracker.dropped_episodes == 6
    assert vec.restarts == [1, 2] and obs[2:, 1].tolist() == [0, 0]
    obs, _, info = collect_step(agent, vec, obs, True, tracker)
    assert "dropped" not in info

    # An env that crashes on every step is a bug, not bad luck: after a few replacements the error surfaces.
    with pytest.raises(RuntimeError, match="failed 3 times in a row"):
        for _ in range(3):
            obs, _, info = collect_step(agent, vec, obs, True, tracker)
    vec.close()
    assert ray.is_initialized(), "closing the env leaves a Ray it did not start running"


# ---- a real local cluster ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"'{text}' not seen in {path.name}:\n{path.read_text(errors='replace')[-3000:]}")


def _stop_node(proc: subprocess.Popen) -> None:
    """Stop a ``setsid ray start --block`` node: SIGTERM to its leader, up to 30 s to drain, then SIGKILL to
    the whole process group for stragglers. (A SIGTERM to the whole group would also stop the GCS that the
    leader's drain request needs, and the leader would wait out a 30 s RPC timeout.)"""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# `ray start` refuses to join a cluster when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the setting that keeps Ray
# on 127.0.0.1 here (with 1, it rewrites 127.0.0.1 to the machine's outward address). This runs `ray start`
# with that one guard of the CLI lifted, so a second node joins on loopback.
JOIN_SCRIPT = """
import sys, types
import ray._private.ray_constants as constants
import ray.scripts.scripts as scripts
scripts.ray_constants = types.SimpleNamespace(**{**vars(constants), "ENABLE_RAY_CLUSTER": True})
sys.exit(scripts.main())
"""

# Runs in the training subprocess: report which nodes the rollout workers landed on, then train.
TRAIN_SCRIPT = """
import sys
import runners.ray_rollout as rr
from runners.cli import run_main
init = rr.RayVectorEnv.__init__
def traced(self, *args, **kwargs):
    init(self, *args, **kwargs)
    print("distinct worker nodes:", len(set(self.worker_nodes())), flush=True)
    print("local channels:", sum(h.channel is not None for h in self._workers), flush=True)
rr.RayVectorEnv.__init__ = traced
sys.exit(run_main(sys.argv[1:]))
"""


@pytest.mark.timeout(240)
def test_training_on_a_local_two_node_cluster(tmp_path):
    port = _free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token"}
    # A temp dir of its own keeps the cluster's address file out of /tmp/ray, where a later ray.init() in
    # this machine would find it; short, because Ray's Unix socket paths live under it.
    temp_dir = tempfile.mkdtemp(prefix="rtc", dir="/tmp")
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []
    try:
        head_log = tmp_path / "head.log"
        with open(head_log, "w") as log:
            head = [RAY_CLI, "start", "--head", f"--port={port}", "--include-dashboard=false",
                    f"--temp-dir={temp_dir}", *common]
            nodes.append(subprocess.Popen(head, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        _wait_for(head_log, "Ray runtime started", nodes[0], 90)
        node_log = tmp_path / "node.log"
        with open(node_log, "w") as log:
            join = [sys.executable, "-c", JOIN_SCRIPT, "start", f"--address=127.0.0.1:{port}", *common]
            nodes.append(subprocess.Popen(join, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        _wait_for(node_log, "Ray runtime started", nodes[1], 90)

        args = ["agent=sac", "env=pointmaze", "agent.hidden_sizes=[32,32]", "agent.learning_starts=50",
                "agent.batch_size=32", "steps=200", "eval.episodes=1", "log_every=100", "progress=false",
                "device=cpu", "runner.backend=ray", "runner.num_envs=4", "runner.num_workers=2",
                f"ray.address=127.0.0.1:{port}", f"run_dir={tmp_path / 'run'}"]
        result = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=150, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "200 steps" in result.stdout
        assert "distinct worker nodes: 2" in result.stdout, "the two workers should run on the two nodes"
        # The worker on the driver's node steps over a local channel, the other through Ray calls.
        assert "local channels: 1" in result.stdout
        assert list((tmp_path / "run" / "checkpoints").iterdir())
    finally:
        for proc in reversed(nodes):
            _stop_node(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)
