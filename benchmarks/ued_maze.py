"""Unsupervised environment design on mazes: DR, robust PLR and DRED students, zero-shot transfer.

    python benchmarks/ued_maze.py --quick               # 3 teachers x 1 seed x 24,576 steps
    python benchmarks/ued_maze.py --steps 1000000 --seeds 3 --out results.json

Each run is a normal ``rl-run agent=ppo env=maze curriculum=<teacher>`` with the same number of
environment steps and the same seeds for every teacher (the episodes PLR and DRED spend evaluating new
levels without learning count as steps, as in the papers). The run's final checkpoint is then evaluated
zero-shot through the evaluation suites (``runners.maze_eval``): ``mazes``, the papers' ten named mazes
(solve rate = share of episodes with return > 0, ``--episodes`` each, sampled actions), and ``heldout``,
one episode on each of 100 held-out structured cave levels.

Which metric is neutral: the named mazes. The held-out levels come from the same generator as DRED's
grounding data (``envs.maze_gen``: the same four structures and cave treatment; only the levels themselves
are disjoint from the grounding training split), so DRED trains on their distribution while DR and PLR never
see it: the held-out rate measures how well a teacher matches that distribution, which DRED is built to do,
and favours DRED by construction. The named mazes come from none of the teachers' generators; the table
prints them first, and their mean is the row to compare teachers on.

Teachers: ``dr`` (domain randomisation), ``plr_robust`` (``curriculum=plr curriculum.robust=true``, positive
value loss) and ``dred`` (grounded in the training split of ``envs.maze_gen``). Their buffers are scaled
to the budget (``TEACHER_OVERRIDES``): the papers' 4000-level buffer is never warm in a CPU-sized run.

Student: the suite's feed-forward PPO on the 5x5 egocentric view plus the direction plane (the papers use
an LSTM; see ``curricula/plr.py``). Budget: the papers train for 250M+ steps; at the quick budget the
students solve the open, short held-out levels at best and the named mazes hardly ever, so the quick
mode checks the pipeline end to end rather than ranking the teachers. Prints a table and writes JSON: per
teacher, per seed and averaged, the solve rate on each named maze, their mean, and the held-out solve rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from runners.config import compose_config
from runners.evaluate_run import EvalArgs, evaluate_run
from runners.train import train

TEACHERS = {
    "dr": ["curriculum=dr"],
    "plr_robust": ["curriculum=plr", "curriculum.robust=true"],
    "dred": ["curriculum=dred"],
}
# Printed under the table and stored in the JSON beside the held-out rates.
HELDOUT_NOTE = ("held-out levels come from the generator of DRED's grounding data (envs.maze_gen; disjoint levels, "
                "same distribution): DRED trains on their distribution, DR and PLR do not")
# Teacher settings scaled to the budget: (quick, full).
TEACHER_OVERRIDES = {
    "dr": ([], []),
    "plr_robust": (["curriculum.buffer_size=64"], ["curriculum.buffer_size=1000"]),
    "dred": (["curriculum.dataset_size=64", "curriculum.buffer_size=128", "curriculum.vae_steps=400"],
             ["curriculum.buffer_size=1000"]),
}


def run_one(teacher: str, seed: int, steps: int, episodes: int, root: Path, extra: list[str],
            quick: bool) -> dict:
    run_dir = root / f"{teacher}_seed{seed}"
    overrides = ["agent=ppo", "env=maze", *TEACHERS[teacher], *TEACHER_OVERRIDES[teacher][0 if quick else 1],
                 f"steps={steps}", f"seed={seed}", f"run_dir={run_dir}", "progress=false", "eval.every=0",
                 "eval.episodes=1", f"checkpoint.every={steps}", *extra]
    start = time.perf_counter()
    train(compose_config(overrides), overrides)
    trained = time.perf_counter()
    out = evaluate_run(EvalArgs(run_dir=run_dir, suites=["mazes", "heldout"], episodes=episodes, seed=12345,
                                deterministic=False))
    mazes = out["results"]["mazes"]["scalars"]
    heldout = out["results"]["heldout"]["scalars"]
    per_maze = {key.removeprefix("solve_rate/"): value for key, value in mazes.items()
                if key.startswith("solve_rate/") and key != "solve_rate/mean"}
    return {"solve_rate": per_maze, "named_mean": mazes["solve_rate/mean"], "heldout": heldout["solve_rate"],
            "heldout_per_structure": {k.removeprefix("solve_rate/"): v for k, v in heldout.items()
                                      if k.startswith("solve_rate/")},
            "train_seconds": trained - start, "eval_seconds": time.perf_counter() - trained}


def summarise(per_seed: list[dict]) -> dict:
    mazes = list(per_seed[0]["solve_rate"])
    return {
        "per_seed": per_seed,
        "solve_rate_mean": {m: float(np.mean([r["solve_rate"][m] for r in per_seed])) for m in mazes},
        "named_mean": float(np.mean([r["named_mean"] for r in per_seed])),
        "named_mean_std": float(np.std([r["named_mean"] for r in per_seed])),
        "heldout": float(np.mean([r["heldout"] for r in per_seed])),
        "heldout_std": float(np.std([r["heldout"] for r in per_seed])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24,576 steps, 1 seed, 2 episodes per named maze")
    parser.add_argument("--steps", type=int, help="environment steps per run (default 1,000,000; --quick 24,576)")
    parser.add_argument("--seeds", type=int, help="seeds per teacher (default 3; --quick 1)")
    parser.add_argument("--episodes", type=int, help="episodes per named maze (default 10; --quick 2)")
    parser.add_argument("--teachers", default=",".join(TEACHERS), help="comma-separated subset of: " + ", ".join(TEACHERS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ued_maze.json"))
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra rl-run overrides, e.g. agent.lr=1e-4")
    args = parser.parse_args(argv)
    steps = args.steps or (24_576 if args.quick else 1_000_000)
    seeds = args.seeds or (1 if args.quick else 3)
    episodes = args.episodes or (2 if args.quick else 10)
    teachers = [t for t in args.teachers.split(",") if t]
    unknown = [t for t in teachers if t not in TEACHERS]
    if unknown:
        parser.error(f"unknown teacher {unknown[0]!r}; choose from: {', '.join(TEACHERS)}")
    torch.set_num_threads(1)  # small networks: one thread each is fastest on a shared CPU

    root = args.runs_dir or Path(tempfile.mkdtemp(prefix="ued_maze_"))
    results = {t: summarise([run_one(t, seed, steps, episodes, root, args.overrides, args.quick)
                             for seed in range(seeds)]) for t in teachers}

    print(f"PPO student (feed-forward), {steps} env steps per run, {seeds} seed(s); zero-shot solve rate "
          f"(named mazes: {episodes} episodes each; held-out: 100 levels)")
    print(f"{'named mazes (neutral)':<30}" + "".join(f"{t:>12}" for t in teachers))
    for maze in results[teachers[0]]["solve_rate_mean"]:
        print(f"  {maze:<28}" + "".join(f"{results[t]['solve_rate_mean'][maze]:>12.2f}" for t in teachers))
    print(f"{'* named mazes, mean':<30}" + "".join(f"{results[t]['named_mean']:>12.3f}" for t in teachers))
    print(f"{'held-out levels (DRED-biased)':<30}" + "".join(f"{results[t]['heldout']:>12.3f}" for t in teachers))
    print(f"{'train s / run':<30}" + "".join(
        f"{np.mean([r['train_seconds'] for r in results[t]['per_seed']]):>12.0f}" for t in teachers))
    print(f"* the metric to compare teachers on. {HELDOUT_NOTE}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": steps, "seeds": seeds, "episodes_per_maze": episodes,
                                    "neutral_metric": "named_mean", "heldout_note": HELDOUT_NOTE,
                                    "overrides": args.overrides, "teacher_overrides": {
                                        t: TEACHER_OVERRIDES[t][0 if args.quick else 1] for t in teachers},
                                    "teachers": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
