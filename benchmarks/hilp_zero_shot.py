"""Offline zero-shot prompting on the point maze: HILP against goal-conditioned behaviour cloning (GCBC) on the
same reward-free dataset, with equal gradient steps and seeds.

    python benchmarks/hilp_zero_shot.py              # 20,000 gradient steps per run, 3 seeds
    python benchmarks/hilp_zero_shot.py --quick      # 4,000 gradient steps, 2 seeds: a few minutes on two cores
    python benchmarks/hilp_zero_shot.py --steps 50000 --seeds 5 --dataset DIR --out results.json

1. Dataset: ``rl-collect preset=random`` (``runners.collect``: a uniform random policy through ``rl-run
   save_dataset=true``) on the point maze's ``medium`` layout (D4RL's medium maze) from random free cells,
   in short episodes (``--episode-steps``, 50): reward-free fragments that cover the maze but rarely cross
   it, so reaching a far goal needs the stitching that HILP's value learning does and behaviour cloning
   cannot. ``--dataset DIR`` reuses a dataset instead. Steps are 0.5 per action (``env.step_size``, 0.2 by
   default) so that crossing the maze takes tens of steps, not hundreds: the value's horizon a CPU budget
   of gradient steps can propagate.
2. Each method trains with ``rl-run agent=NAME env=pointmaze dataset=DIR steps=N`` (``runners.trainers.offline``) in
   its CPU-sized setting (``agents.hilp.HILP_CPU``, ``agents.gcbc.GCBC_CPU``), same N and seeds.
3. Scores (``runners.skill_eval``, ``runners.prompt_eval``): ``goal_success``, the success rate over the
   maze's 12 goal cells from the start cell (z = (phi(g) - phi(s)) / ||.|| every step for HILP, the goal
   observation for GCBC); for HILP also ``goal_success_plan``, the same agents through HILP-Plan's
   subgoals (``goal_planning``: 3 recursions over the phi of the dataset's states); and ``reward_return``,
   the episode return of the reward-prompted policy on each corner task (dense reward: minus the distance
   to the corner; z from least squares of that reward on phi over 10,000 dataset transitions for HILP, the
   best-rewarded dataset state as the goal for GCBC), beside ``random_return``, a uniform random policy's.
   Evaluation episodes are the env's 200 steps, deterministic policies.

Scale: the paper trains 1M gradient steps of 3 x 512 networks at batch 1024 on a GPU; the budgets here are
CPU-sized and show the direction only. Prints a table and writes JSON: per env, per method
``goal_success`` and ``reward_return`` / ``random_return`` by task (mean, std, per seed), and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from agents.gcbc import GCBC_CPU
from agents.hilp import HILP_CPU
from runners.collect import collect
from runners.config import compose_config
from runners.train import train

METHODS = {"hilp": HILP_CPU, "gcbc": GCBC_CPU}
# HILP is also scored through HILP-Plan's subgoals (same trained agent, planning only at test time)
SUITES = {"hilp": "[goal_reaching,goal_planning,reward_prompting]", "gcbc": "[goal_reaching,reward_prompting]"}
EPISODES = 3  # evaluation episodes per reward task (the maze's start noise is small)


def env_overrides(layout: str, step_size: float) -> list[str]:
    return ["env=pointmaze", f"env.layout={layout}", f"env.step_size={step_size}"]


def make_dataset(path: Path, layout: str, step_size: float, steps: int, episode_steps: int) -> Path:
    """A random-policy dataset from random free cells, collected by ``rl-collect preset=random``."""
    overrides = [*env_overrides(layout, step_size)[1:], "env.random_start=true", f"env.max_episode_steps={episode_steps}",
                 "eval.episodes=0", "checkpoint.every=0", "progress=false", "runner.num_envs=4"]
    return collect("random", path, steps, overrides)


def agent_overrides(method: str) -> list[str]:
    return [f"agent.{k}={json.dumps(v).replace(' ', '')}" for k, v in METHODS[method].items()]


def run_one(job: tuple[str, int, int, str, str, float, str]) -> dict:
    """Train one method on the dataset with rl-run's offline loop; its final evaluation is the score."""
    method, seed, steps, dataset, layout, step_size, run_root = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    overrides = [f"agent={method}", *env_overrides(layout, step_size), *agent_overrides(method), f"dataset={dataset}",
                 f"steps={steps}", f"seed={seed}", f"run_dir={Path(run_root) / f'{method}_seed{seed}'}", "progress=false",
                 f"log_every={max(steps // 10, 1)}", "eval.every=0", "checkpoint.every=0", f"eval.episodes={EPISODES}",
                 f"eval.suites={SUITES[method]}"]
    result = train(compose_config(overrides), overrides).last_eval["results"]
    prompt = result["reward_prompting"]["scalars"]
    tasks = sorted(k.removeprefix("return/") for k in prompt if k.startswith("return/"))
    planning = result.get("goal_planning", {}).get("scalars", {})
    return {"method": method, "seed": seed, "seconds": time.perf_counter() - t0,
            "goal_success": result["goal_reaching"]["scalars"]["success_rate"],
            "goal_success_plan": planning.get("success_rate"),
            "reward_return": {t: prompt[f"return/{t}"] for t in tasks},
            "random_return": {t: prompt[f"random_return/{t}"] for t in tasks}}


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "seeds": values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 gradient steps and 2 seeds")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/hilp_zero_shot[_quick].json)")
    parser.add_argument("--steps", type=int, help="gradient steps per run (default 20,000; --quick 4,000)")
    parser.add_argument("--seeds", type=int, help="seeds per method (default 3; --quick 2)")
    parser.add_argument("--layout", default="medium", help="point-maze layout")
    parser.add_argument("--step-size", type=float, default=0.5, help="env.step_size of the maze")
    parser.add_argument("--data-steps", type=int, default=50_000, help="transitions collected for the dataset")
    parser.add_argument("--episode-steps", type=int, default=50, help="length of the dataset's episodes")
    parser.add_argument("--dataset", type=Path, default=None, help="use this dataset instead of collecting one")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    args = parser.parse_args(argv)
    steps = args.steps or (4_000 if args.quick else 20_000)
    n_seeds = args.seeds or (2 if args.quick else 3)
    out = args.out or Path(f"benchmarks/results/hilp_zero_shot{'_quick' if args.quick else ''}.json")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hilp_zero_shot_") as tmp:
        dataset = args.dataset
        if dataset is None:
            dataset = make_dataset(Path(tmp) / "dataset", args.layout, args.step_size, args.data_steps, args.episode_steps)
            print(f"dataset: {args.data_steps} random-policy transitions ({time.perf_counter() - start:.0f}s)", file=sys.stderr)
        jobs = [(m, s, steps, str(dataset), args.layout, args.step_size, tmp) for s in range(n_seeds) for m in METHODS]
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for run in pool.map(run_one, jobs):
                print(f"{run['method']} seed {run['seed']}: goal success {run['goal_success']:.2f}, reward returns "
                      f"{run['reward_return']} ({run['seconds']:.0f}s)", file=sys.stderr, flush=True)
                runs[run["method"]].append(run)

    env = f"pointmaze-{args.layout}"
    tasks = sorted(runs["hilp"][0]["reward_return"])
    result: dict = {"gradient_steps": steps, "seeds": n_seeds, "data_steps": args.data_steps,
                    "episode_steps": args.episode_steps, "step_size": args.step_size, "eval_episodes": EPISODES,
                    "settings": {m: METHODS[m] for m in METHODS}, env: {}}
    for method, rs in runs.items():
        result[env][method] = {
            "goal_success": summary([r["goal_success"] for r in rs]),
            "reward_return": {t: summary([r["reward_return"][t] for r in rs]) for t in tasks},
            "random_return": {t: summary([r["random_return"][t] for r in rs]) for t in tasks},
            "seconds_per_run": float(np.mean([r["seconds"] for r in rs])),
        }
        if rs[0]["goal_success_plan"] is not None:
            result[env][method]["goal_success_plan"] = summary([r["goal_success_plan"] for r in rs])
    print(f"{env}: {steps} gradient steps per run, mean +- std over {n_seeds} seeds; reward tasks: return (random policy)")
    print(f"{'method':<9} {'goal success':>13} " + " ".join(f"{t:>21}" for t in tasks) + f" {'s/run':>6}")
    for method in runs:
        r = result[env][method]
        cells = " ".join(f"{r['reward_return'][t]['mean']:8.1f} ({r['random_return'][t]['mean']:8.1f})  " for t in tasks)
        print(f"{method:<9} {r['goal_success']['mean']:6.2f} +-{r['goal_success']['std']:4.2f} {cells} "
              f"{r['seconds_per_run']:6.0f}")
        if "goal_success_plan" in r:
            plan = r["goal_success_plan"]
            print(f"{method + '-plan':<9} {plan['mean']:6.2f} +-{plan['std']:4.2f}  (HILP-Plan subgoals, same agents)")
    print(f"total {time.perf_counter() - start:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
