"""Skill discovery on the point maze and Ant: state coverage and zero-shot goal reaching of METRA, LSD,
DIAYN and a random policy, plus what a METRA gradient step costs next to a plain SAC step.

    python benchmarks/metra_coverage.py            # 50,000 env steps per run, 5 seeds, both envs
    python benchmarks/metra_coverage.py --quick    # 10,000 env steps, 3 seeds: a few minutes per env on two cores
    python benchmarks/metra_coverage.py --steps 30000 --seeds 3 --envs ant --methods metra,random --out results.json

Every learner trains with the config ``rl-run agent=NAME env=ENV`` composes (registry defaults plus the
per-env preset of ``runners.presets``: Ant is METRA's setting, 2-D skills, position in the observation,
200-step episodes) for the same number of env steps, driven by the runner's own step function
(``runners.rollout.collect_step``), then is scored by the suites of ``runners.skill_eval``: policy state
coverage (distinct 1 x 1 cells visited by 48 skill trajectories) and goal-reaching success over the
env's goal set (point maze: 12 free cells; Ant: 8 points at radius 10). The random policy is scored on
the same trajectories and goals (it ignores the goal). The point maze is the four-rooms layout (104
free cells): in the default open 5 x 5 maze a random policy already visits every cell.

Step cost: seconds per ``METRAAgent.update`` (phi, lambda, reward recomputation, SAC) over seconds per
``SAC.update`` with the same networks, batch size and skill-sized context, timed alternately in one
process on the same replay batch, per env.

Scale: the paper trains METRA on Ant for millions of env steps on a GPU; the budgets here are CPU-sized
and show the early direction only. Prints a table and writes JSON: per env, ``coverage`` and
``goal_success`` by method (mean, std, per seed), ``step_cost_ratio`` and the timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from agents import AGENTS
from agents.random_agent import RandomAgent, RandomConfig
from agents.sac import SAC
from runners.checkpoint import seed_everything
from runners.config import compose_config
from runners.evaluation import SUITES, EvalContext
from runners.rollout import EpisodeTracker, collect_step, make_vector_env
from runners.skill_eval import COVERAGE_TRAJECTORIES, reach_goals, rollout, state_coverage

METHODS = ("metra", "lsd", "diayn", "random")
ENVS_RUN = {"pointmaze": ["env=pointmaze", "env.layout=four_rooms"], "ant": ["env=ant"]}
EVAL_SEED = 1_000_003


def configure(method: str, env: str):
    """(env spec, agent config) as ``rl-run agent=method`` composes them; the random policy plays METRA's env."""
    spec = OmegaConf.to_object(compose_config(["agent=metra", *ENVS_RUN[env]]).env)
    if method == "random":
        return spec, None
    return spec, OmegaConf.to_object(compose_config([f"agent={method}", *ENVS_RUN[env]]).agent)


def train(method: str, env: str, steps: int, seed: int):
    """A learner trained for ``steps`` env steps exactly as ``rl-run`` drives it (one env, sync)."""
    seed_everything(seed)
    spec, cfg = configure(method, env)
    envs = make_vector_env(spec, 1, "sync", seed)
    agent = AGENTS[method][1](cfg, envs.single_observation_space, envs.single_action_space, 1, torch.device("cpu"))
    agent.seed(seed)
    tracker = EpisodeTracker(1)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        obs, _, _ = collect_step(agent, envs, obs, spec.provides_final_obs, tracker)
    envs.close()
    return agent


def score_random(env: str, seed: int) -> tuple[float, float]:
    spec, _ = configure("random", env)
    agent = RandomAgent(RandomConfig(), None, spec.make().action_space, 1, None)
    agent.seed(seed)

    def act(obs, rows):
        return agent.act(obs)

    _, positions = rollout(spec, act, COVERAGE_TRAJECTORIES, EVAL_SEED)
    goals = reach_goals(spec, lambda goals, goal_obs: act, EVAL_SEED)
    return float(state_coverage(positions)), goals["scalars"]["success_rate"]


def run_one(job: tuple[str, str, int, int]) -> tuple[str, str, int, float, float, float]:
    """(env, method, seed, coverage, goal success, seconds) of one run."""
    env, method, seed, steps = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if method == "random":
        coverage, success = score_random(env, seed)
    else:
        agent = train(method, env, steps, seed)
        ctx = EvalContext(agent=agent, env=configure(method, env)[0], episodes=1, seed=EVAL_SEED, deterministic=True,
                          out_dir=None, step=steps)
        coverage = SUITES["coverage"](ctx)["scalars"]["state_coverage"]
        success = SUITES["goal_reaching"](ctx)["scalars"]["success_rate"]
    return env, method, seed, coverage, success, time.perf_counter() - t0


def step_cost(env: str, repeats: int = 200) -> dict[str, float]:
    """Seconds per METRA and per plain SAC gradient step (same sizes), timed alternately on one batch."""
    torch.set_num_threads(1)
    agent = train("metra", env, 1_000, 0)  # fills the replay buffer; no updates yet (learning_starts 2,000)
    cfg = agent.cfg
    spec, _ = configure("metra", env)
    probe = spec.make()
    sac = SAC(cfg, probe.observation_space, probe.action_space, "cpu", context_dim=cfg.skill_dim)
    probe.close()
    batch = agent.buffer.sample(cfg.batch_size, np.random.default_rng(0))
    sac_batch = {**batch, "context": batch["z"]}
    times = {"metra": 0.0, "sac": 0.0}
    for i in range(repeats + 10):
        for name, step in (("metra", lambda: agent.update(batch)), ("sac", lambda: sac.update(sac_batch))):
            t0 = time.perf_counter()
            step()
            if i >= 10:  # warm-up
                times[name] += time.perf_counter() - t0
    return {"metra_step_s": times["metra"] / repeats, "sac_step_s": times["sac"] / repeats,
            "step_cost_ratio": times["metra"] / times["sac"]}


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "seeds": values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 env steps and 3 seeds")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/metra_coverage[_quick].json)")
    parser.add_argument("--steps", type=int, help="env steps per run (default 50,000; --quick 10,000)")
    parser.add_argument("--seeds", type=int, help="seeds per method (default 5; --quick 3)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list of: {', '.join(METHODS)}")
    parser.add_argument("--envs", default=",".join(ENVS_RUN), help=f"comma list of: {', '.join(ENVS_RUN)}")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    args = parser.parse_args(argv)
    steps = args.steps or (10_000 if args.quick else 50_000)
    n_seeds = args.seeds or (3 if args.quick else 5)
    methods, envs = args.methods.split(","), args.envs.split(",")
    for name in methods:
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; choose from: {', '.join(METHODS)}")
    for name in envs:
        if name not in ENVS_RUN:
            parser.error(f"unknown env {name!r}; choose from: {', '.join(ENVS_RUN)}")
    out = args.out or Path(f"benchmarks/results/metra_coverage{'_quick' if args.quick else ''}.json")

    start = time.perf_counter()
    jobs = [(e, m, s, steps) for e in envs for m in methods for s in range(n_seeds)]
    runs = {e: {m: {"coverage": [], "goal_success": [], "seconds": []} for m in methods} for e in envs}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        costs = {e: pool.submit(step_cost, e) for e in envs}
        for env, method, seed, coverage, success, seconds in pool.map(run_one, jobs):
            print(f"{env} {method} seed {seed}: coverage {coverage:.0f}, goal success {success:.2f} ({seconds:.0f}s)",
                  file=sys.stderr, flush=True)
            for key, value in (("coverage", coverage), ("goal_success", success), ("seconds", seconds)):
                runs[env][method][key].append(value)
        costs = {e: c.result() for e, c in costs.items()}

    result: dict = {"steps": steps, "seeds": n_seeds, "coverage_trajectories": COVERAGE_TRAJECTORIES}
    for env in envs:
        r = runs[env]
        result[env] = {
            "coverage": {m: summary(r[m]["coverage"]) for m in methods},
            "goal_success": {m: summary(r[m]["goal_success"]) for m in methods},
            "seconds_per_run": {m: float(np.mean(r[m]["seconds"])) for m in methods},
            **costs[env],
        }
        print(f"{env}: {steps} env steps per run, mean +- std over {n_seeds} seeds")
        print(f"{'method':<8} {'coverage (cells)':>17} {'goal success':>14} {'s/run':>6}")
        for m in methods:
            c, g = result[env]["coverage"][m], result[env]["goal_success"][m]
            print(f"{m:<8} {c['mean']:9.1f} +-{c['std']:5.1f} {g['mean']:7.2f} +-{g['std']:4.2f} "
                  f"{result[env]['seconds_per_run'][m]:6.0f}")
        cost = costs[env]
        print(f"gradient step: METRA {cost['metra_step_s'] * 1e3:.1f} ms, SAC {cost['sac_step_s'] * 1e3:.1f} ms, "
              f"ratio {cost['step_cost_ratio']:.2f}\n")
    print(f"total {time.perf_counter() - start:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
