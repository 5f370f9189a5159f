"""Rollout throughput: environment steps per second of each vector-env back-end with a policy in the loop.

    python benchmarks/rollout_throughput.py              # 10 s per measurement
    python benchmarks/rollout_throughput.py --quick      # 3 s per measurement: a few minutes on two cores
    python benchmarks/rollout_throughput.py --quick --profile   # plus a cProfile of the Ray driver
    python benchmarks/rollout_throughput.py --quick --backends ray,ray_calls   # what the local channel saves
    python benchmarks/rollout_throughput.py --envs quadruped --num-envs 32 --out ray32.json

For dm_control quadruped and MiniGrid FourRooms (``envs.ENVS``), at 8 and 32 envs, each step runs a small
MLP policy (two hidden layers of 64, one batched torch forward on one thread) on the observations and steps
the vector env with its actions. Back-ends:

* ``limit``: one process stepping one env with precomputed random actions and no policy, times the number of
  cores: what perfect parallel stepping would reach;
* ``sync`` / ``async``: Gymnasium's SyncVectorEnv / AsyncVectorEnv (one subprocess per env), SAME_STEP
  autoreset;
* ``sb3_subproc``: stable-baselines3's SubprocVecEnv (one subprocess per env) over the same Gymnasium envs;
* ``sync_per_core``: one subprocess per core (``min(cores, N)`` of them), each stepping a SyncVectorEnv of its
  share of the N envs (contiguous blocks differing by at most one env, as Ray's workers get), driven over a
  pipe: Ray's batching per process without Ray, so ``ray`` vs ``sync_per_core`` is the cost of the transport
  and ``sync_per_core`` vs ``async`` / ``sb3_subproc`` the gain of batching several envs per process;
* ``ray``: ``runners.ray_rollout.RayVectorEnv`` with one rollout worker per core on an embedded Ray;
* ``ray_calls`` (only with ``--backends``): the same with every call through Ray, no local channel.

Every rate is the best 1-s window of the measurement (the mean over windows is in the JSON too): the machine
may be shared, and the best window is the one least disturbed by other load; the limit is measured the same
way. Prints a table and writes JSON: per env and env count, steps/s of each back-end and its ratio to the
limit (``ratio_<name>``), the CPU other processes on the machine took during each measurement
(``other_cores``, in cores), and for Ray an estimate of its per-step
overhead: the time of a Ray vector step minus the policy's forward time and the busiest worker's stepping
time (its share of envs at the single-env rate). ``--profile`` adds a cProfile of the driver in Ray runs.
"""

from __future__ import annotations

import os

# One thread per process for every numeric library (the back-ends bring their own parallelism), fixed before
# numpy is imported and inherited by every subprocess and Ray worker.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import cProfile
import io
import itertools
import json
import math
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs
from envs import AUTORESET_MODE, EnvSpec

# torch and Ray are imported inside functions: the spawned env subprocesses of the async and SB3 back-ends
# import this module again, and need neither.

BACKENDS = ["limit", "sync", "async", "sb3_subproc", "sync_per_core", "ray"]
# On request: the Ray back-end with every call through Ray, no local channel (to see what the channel saves).
EXTRA_BACKENDS = ["ray_calls"]
ENV_NAMES = ("quadruped", "minigrid")
NUM_ENVS = (8, 32)


class MLPPolicy:
    """Two hidden layers of 64; Box actions through tanh, Discrete ones sampled from the logits."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, seed: int = 0):
        import torch

        torch.manual_seed(seed)
        self.torch = torch
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(int(np.prod(observation_space.shape)), 64), torch.nn.Tanh(),
            torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, out),
        )
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            out = self.net(torch.as_tensor(obs, dtype=torch.float32).reshape(len(obs), -1)).numpy()
        if self.discrete:  # Gumbel-max sampling, so a MiniGrid agent does not repeat one move forever
            return (out + self.rng.gumbel(size=out.shape)).argmax(axis=1)
        return np.tanh(out)


def timed_windows(step: Callable[[], Any], seconds: float, warmup: int, window: float = 1.0) -> list[float]:
    """Run ``step`` ``warmup`` times, then for about ``seconds``; returns the calls per second of each
    ``window``-second stretch (the best one is the least disturbed by other load on the machine)."""
    for _ in range(warmup):
        step()
    rates: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < window:
            step()
            n += 1
        rates.append(n / (time.perf_counter() - t0))
    return rates


def single_env_rates(spec: EnvSpec, seconds: float) -> list[float]:
    """Steps/s of one env in this process (per 1-s window), random actions drawn beforehand, no policy."""
    env = spec.make()
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    i = 0

    def step() -> None:
        nonlocal i
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        i += 1
        if terminated or truncated:
            env.reset()

    rates = timed_windows(step, seconds, warmup=100)
    env.close()
    return rates


def env_blocks(num_envs: int, workers: int) -> list[range]:
    """Contiguous blocks of env indices, one per worker, sizes differing by at most one (larger first)."""
    base, extra = divmod(num_envs, workers)
    sizes = [base + (w < extra) for w in range(workers)]
    starts = np.cumsum([0, *sizes])
    return [range(int(a), int(b)) for a, b in itertools.pairwise(starts)]


def _sync_worker(conn, spec: EnvSpec, count: int) -> None:
    """Subprocess of ``SyncPerCoreVectorEnv``: a SyncVectorEnv of ``count`` envs, stepped on request."""
    venv = gym.vector.SyncVectorEnv([spec.make for _ in range(count)], autoreset_mode=AUTORESET_MODE)
    try:
        while True:
            command, data = conn.recv()
            if command == "reset":
                conn.send(venv.reset(seed=data))
            elif command == "step":
                conn.send(venv.step(data))
            else:
                break
    finally:
        venv.close()
        conn.close()


class SyncPerCoreVectorEnv:
    """``num_envs`` envs in ``workers`` subprocesses, each a SyncVectorEnv of its block (``env_blocks``), with
    actions and results (observations, rewards, terminations, truncations and infos, pickled) over one pipe per
    worker: the per-process batching of the Ray back-end with a plain pipe as the transport."""

    def __init__(self, spec: EnvSpec, num_envs: int, workers: int):
        import multiprocessing

        probe = spec.make()
        self.single_observation_space, self.single_action_space = probe.observation_space, probe.action_space
        probe.close()
        ctx = multiprocessing.get_context("spawn")
        self.blocks = env_blocks(num_envs, workers)
        self.conns, self.procs = [], []
        for block in self.blocks:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_sync_worker, args=(child, spec, len(block)), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def reset(self, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
        for conn, block in zip(self.conns, self.blocks, strict=True):
            conn.send(("reset", seed + block.start))
        results = [conn.recv() for conn in self.conns]
        return np.concatenate([r[0] for r in results]), [r[1] for r in results]

    def step(self, actions: np.ndarray) -> tuple:
        for conn, block in zip(self.conns, self.blocks, strict=True):
            conn.send(("step", actions[block.start:block.stop]))
        results = [conn.recv() for conn in self.conns]
        obs, reward, terminated, truncated = (np.concatenate([r[i] for r in results]) for i in range(4))
        return obs, reward, terminated, truncated, [r[4] for r in results]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def make_backend(name: str, spec: EnvSpec, num_envs: int, cores: int):
    fns = [spec.make for _ in range(num_envs)]
    if name == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AUTORESET_MODE)
    if name == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AUTORESET_MODE, context="spawn")
    if name == "sb3_subproc":
        from stable_baselines3.common.vec_env import SubprocVecEnv

        return SubprocVecEnv(fns, start_method="spawn")
    if name == "sync_per_core":
        return SyncPerCoreVectorEnv(spec, num_envs, workers=min(cores, num_envs))
    if name in ("ray", "ray_calls"):
        from runners.ray_rollout import RayVectorEnv

        return RayVectorEnv(spec, num_envs, num_workers=min(cores, num_envs), seed=0,
                            local_channel=name == "ray")
    raise ValueError(name)


def vector_rates(name: str, spec: EnvSpec, num_envs: int, cores: int, seconds: float,
                 profile: cProfile.Profile | None = None) -> tuple[list[float], float | None]:
    """Steps/s (summed over envs, per 1-s window) of back-end ``name``, the MLP policy acting every step, and
    the cores other processes used meanwhile."""
    venv = make_backend(name, spec, num_envs, cores)
    sb3 = name == "sb3_subproc"
    policy = MLPPolicy(venv.observation_space if sb3 else venv.single_observation_space,
                       venv.action_space if sb3 else venv.single_action_space)
    obs = venv.reset() if sb3 else venv.reset(seed=0)[0]

    def step() -> None:
        nonlocal obs
        obs = venv.step(policy(obs))[0]

    try:
        timed_windows(step, 0.0, warmup=20)
        if profile is not None:
            profile.enable()
        meter = CpuMeter()
        rates = timed_windows(step, seconds, warmup=0)
        other_cores = meter.others()
        if profile is not None:
            profile.disable()
    finally:
        venv.close()
    return [r * num_envs for r in rates], other_cores


def policy_seconds(spec: EnvSpec, num_envs: int) -> float:
    """Seconds of one batched policy forward on ``num_envs`` observations (best 1-s window)."""
    env = spec.make()
    obs = np.stack([env.observation_space.sample() for _ in range(num_envs)])
    policy = MLPPolicy(env.observation_space, env.action_space)
    env.close()
    return 1.0 / max(timed_windows(lambda: policy(obs), 1.0, warmup=20))


class CpuMeter:
    """CPU cores used since construction by the whole machine (``total``) and by processes other than this one
    and its descendants (``others``: not Ray's nor the back-ends' subprocesses). Read from /proc, so Linux
    only (None elsewhere)."""

    def __init__(self) -> None:
        self._start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        """(wall seconds, busy CPU seconds of the machine, CPU seconds of this process tree)."""
        try:
            with open("/proc/stat") as f:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
            parent, ticks = {}, {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:  # exited meanwhile
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                parent[int(entry)], ticks[int(entry)] = int(fields[1]), int(fields[11]) + int(fields[12])
        except OSError:
            return None
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            tree += ticks.get(pid, 0)
            todo += children.get(pid, [])
        hz = os.sysconf("SC_CLK_TCK")
        return time.perf_counter(), (user + nice + system + irq + softirq + steal) / hz, tree / hz

    def _deltas(self) -> tuple[float, float, float] | None:
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        wall, busy, tree = (e - s for e, s in zip(end, self._start))
        return wall, busy, tree

    def others(self) -> float | None:
        deltas = self._deltas()
        return None if deltas is None else round(max(0.0, deltas[1] - deltas[2]) / deltas[0], 2)

    def total(self) -> float | None:
        deltas = self._deltas()
        return None if deltas is None else deltas[1] / deltas[0]


def wait_until_idle(max_seconds: float = 30.0, below_cores: float = 0.25) -> None:
    """Wait (at most ``max_seconds``) until the machine is nearly idle, e.g. until the subprocesses of the
    back-end measured last have exited, so that each measurement starts on a quiet machine."""
    deadline = time.perf_counter() + max_seconds
    while time.perf_counter() < deadline:
        meter = CpuMeter()
        time.sleep(0.5)
        total = meter.total()
        if total is None or total < below_cores:
            return


def table(results: dict[str, Any], backends: list[str], cores: int) -> str:
    ray_names = [b for b in backends if b.startswith("ray")]
    lines = [f"{'env':<10} {'envs':>4} " + " ".join(f"{b:>13}" for b in backends)
             + "".join(f" {b + ' ovh ms':>14}" for b in ray_names) + f" {'others':>6}"]
    for env_name, per_count in results.items():
        for count, res in per_count.items():
            cells = [f"{res[b]:>13.0f}" if b == "limit" else f"{res[b]:>7.0f} {res[f'ratio_{b}']:>5.2f}"
                     for b in backends]
            cells += [f"{res[f'{b}_overhead_ms_per_step']:>14.2f}" for b in ray_names]
            lines.append(f"{env_name:<10} {count:>4} " + " ".join(cells)
                         + f" {max(v or 0.0 for v in res['other_cores'].values()):>6.2f}")
    return "\n".join(lines) + (
        f"\nsteps/s of the best 1-s window (ratio to limit); limit = one env, no policy, x {cores} cores; "
        "ovh = Ray step time - policy - busiest worker's stepping; async, sb3_subproc: one process per env; "
        "sync_per_core, ray: one process per core, each stepping its share of the envs; "
        "others = most CPU cores other processes used during one of the row's measurements")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement instead of 10")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rollout_throughput.json"))
    parser.add_argument("--envs", default=",".join(ENV_NAMES), help=f"comma list of: {', '.join(ENV_NAMES)}")
    parser.add_argument("--num-envs", default=",".join(map(str, NUM_ENVS)), help="comma list of env counts")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma list of: {', '.join(BACKENDS + EXTRA_BACKENDS)}")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores (Ray workers) to count on")
    parser.add_argument("--profile", action="store_true", help="cProfile the driver of the Ray back-end")
    args = parser.parse_args(argv)
    env_names = args.envs.split(",")
    counts = [int(c) for c in args.num_envs.split(",")]
    backends = args.backends.split(",")
    for name in env_names:
        if name not in ENV_NAMES:
            parser.error(f"unknown env {name!r}; choose from: {', '.join(ENV_NAMES)}")
    for name in backends:
        if name not in BACKENDS + EXTRA_BACKENDS:
            parser.error(f"unknown back-end {name!r}; choose from: {', '.join(BACKENDS + EXTRA_BACKENDS)}")
    if "limit" not in backends:
        backends.insert(0, "limit")  # every ratio needs it
    seconds = 3.0 if args.quick else 10.0
    cores = args.cores
    import ray
    import torch

    from runners import ray_rollout  # noqa: F401  (sets Ray's loopback defaults before Ray is imported)

    torch.set_num_threads(1)

    start = time.perf_counter()
    if any(b.startswith("ray") for b in backends):  # one embedded Ray for all measurements
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    results: dict[str, Any] = {}
    profiles: dict[str, str] = {}
    for env_name in env_names:
        spec = envs.ENVS[env_name]
        wait_until_idle()
        meter = CpuMeter()
        single_rates = single_env_rates(spec, seconds)
        single, limit_others = max(single_rates), meter.others()
        results[env_name] = {}
        for count in counts:
            res: dict[str, Any] = {"limit": single * cores, "single_env": single,
                                   "limit_mean": float(np.mean(single_rates)) * cores,
                                   "other_cores": {"limit": limit_others}}
            for backend in backends[1:]:
                wait_until_idle()
                profile = cProfile.Profile() if args.profile and backend.startswith("ray") else None
                rates, others = vector_rates(backend, spec, count, cores, seconds, profile)
                res["other_cores"][backend] = others
                res[backend], res[f"{backend}_mean"] = max(rates), float(np.mean(rates))
                res[f"ratio_{backend}"] = res[backend] / res["limit"]
                print(f"{env_name} {count} envs {backend}: {res[backend]:.0f} steps/s "
                      f"({res[f'ratio_{backend}']:.2f} of limit; other processes used "
                      f"{res['other_cores'][backend]} cores)",
                      file=sys.stderr, flush=True)
                if profile is not None:
                    text = io.StringIO()
                    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
                    profiles[f"{env_name}_{count}_{backend}"] = text.getvalue()
            ray_names = [b for b in backends if b.startswith("ray")]
            if ray_names:
                res["policy_ms_per_step"] = 1e3 * policy_seconds(spec, count)
                busiest = 1e3 * math.ceil(count / min(cores, count)) / single
                for b in ray_names:
                    step_ms = 1e3 * count / res[b]
                    res[f"{b}_overhead_ms_per_step"] = step_ms - busiest - res["policy_ms_per_step"]
            results[env_name][count] = res
    if ray.is_initialized():
        ray.shutdown()

    print(table(results, backends, cores))
    for key, text in profiles.items():
        print(f"\ncProfile of the driver, {key} (top 15 by own time):\n{text}")
    print(f"total {time.perf_counter() - start:.0f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/rollout_throughput.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "cores": cores,
        "seconds_per_measurement": seconds,
        "statistic": "steps/s of the best 1-s window (<name>_mean: mean over the windows)",
        "policy": "MLP 64-64 tanh, batched torch forward, 1 thread",
        "results": results,
        "driver_profiles": profiles,
    }, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
