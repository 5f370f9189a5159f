"""ALP-GMM against Random on parametric BipedalWalker stump tracks, with a CPU-sized SAC student.

    python benchmarks/teacher_bipedal.py --quick               # 2 teachers x 1 seed x 20k steps
    python benchmarks/teacher_bipedal.py --steps 200000 --seeds 3 --out results.json

Each run is a normal ``rl-run agent=sac env=bipedal curriculum=<teacher>`` (same config path, same
seeds for both teachers), then the run's final checkpoint is evaluated on the fixed test set of 50
stump-track levels (``test_levels`` suite): % of levels mastered (return > 230) and the mean return.

Budget. teachDeepRL trains its students for 20 million steps; a CPU-sized budget of tens or hundreds of
thousands of steps is far too short for any test level to be mastered, so at the quick budget this
benchmark checks the pipeline and reports the mean test return, where the teachers may not yet differ.
Prints a table and writes JSON: per teacher, per-seed and mean/std of ``percent_mastered`` and
``test_return``, with the budget.
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

TEACHERS = ("random", "alp_gmm")


def run_one(teacher: str, seed: int, steps: int, root: Path, extra: list[str]) -> dict[str, float]:
    run_dir = root / f"{teacher}_seed{seed}"
    overrides = ["agent=sac", "env=bipedal", f"curriculum={teacher}", f"steps={steps}", f"seed={seed}",
                 f"run_dir={run_dir}", "progress=false", "eval.every=0", "eval.episodes=1",
                 f"checkpoint.every={steps}", *extra]
    start = time.perf_counter()
    train(compose_config(overrides), overrides)
    out = evaluate_run(EvalArgs(run_dir=run_dir, suites=["test_levels"], seed=12345))
    scalars = out["results"]["test_levels"]["scalars"]
    return {"percent_mastered": scalars["percent_mastered"], "test_return": scalars["return_mean"],
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 steps, 1 seed")
    parser.add_argument("--steps", type=int, help="environment steps per run (default 100,000; --quick 20,000)")
    parser.add_argument("--seeds", type=int, help="seeds per teacher (default 3; --quick 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/teacher_bipedal.json"))
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra rl-run overrides, e.g. agent.learning_starts=2000")
    args = parser.parse_args(argv)
    steps = args.steps or (20_000 if args.quick else 100_000)
    seeds = args.seeds or (1 if args.quick else 3)
    extra = args.overrides or ["agent.learning_starts=2000", "agent.hidden_sizes=[128,128]"]
    torch.set_num_threads(1)

    root = args.runs_dir or Path(tempfile.mkdtemp(prefix="teacher_bipedal_"))
    results: dict[str, dict] = {}
    for teacher in TEACHERS:
        per_seed = [run_one(teacher, seed, steps, root, extra) for seed in range(seeds)]
        results[teacher] = {
            "per_seed": per_seed,
            **{f"{key}_{stat}": float(fn([r[key] for r in per_seed]))
               for key in ("percent_mastered", "test_return") for stat, fn in (("mean", np.mean), ("std", np.std))},
        }
    print(f"SAC student, {steps} steps per run, {seeds} seed(s), test set of 50 stump-track levels")
    print(f"{'teacher':<10} {'% mastered':>16} {'test return':>18} {'s/run':>7}")
    for teacher, r in results.items():
        secs = np.mean([p["seconds"] for p in r["per_seed"]])
        print(f"{teacher:<10} {r['percent_mastered_mean']:>8.1f} +- {r['percent_mastered_std']:<5.1f} "
              f"{r['test_return_mean']:>9.1f} +- {r['test_return_std']:<6.1f} {secs:>7.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": steps, "seeds": seeds, "overrides": extra, "teachers": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
