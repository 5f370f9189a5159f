"""Teachers on teachDeepRL's toy testbed: % of cells mastered as the episodes go by.

    python benchmarks/teacher_toy.py            # 4 settings x 4 teachers, 20,000 episodes, 5 seeds
    python benchmarks/teacher_toy.py --quick    # 8,000 episodes, 2 seeds: a few minutes on two cores
    python benchmarks/teacher_toy.py --out results.json --seeds 10 --settings 2d,5d --teachers alp_gmm,random

Every teacher runs with its default (reference) config against a simulated student
(``envs.toy_teacher.ToyTestbed``), one episode at a time as the reference's loop does: sample a task,
play it, report the competence. The score, % mastered learnable cells, is taken before the first
episode and every 1,000 episodes. Seed s fixes both the testbed's layout of unlearnable cells and the
teacher's seed, so every teacher meets the same layouts.

Settings: ``2d`` is the paper's 10 x 10 grid. The reference's 5-D runs use 4 cells per dimension (1,024
cells) with 5x more episodes; with the same 20,000 episodes as 2-D, ``5d`` uses 3 cells per dimension
(243 cells), otherwise no teacher masters more than a few cells. ``*_unlearnable50`` make half of the
cells unlearnable (every learnable cell stays reachable; see ``envs.toy_teacher``).

Prints a table (mean +- std over seeds at a few points of the run) and writes JSON: per setting and
teacher, the curve's episodes, mean and std, the per-seed curves and the seconds per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from curricula import TEACHERS, make_teacher
from envs.toy_teacher import ToyTestbed

SETTINGS = {
    "2d": {"ndims": 2, "cells_per_dim": 10, "unlearnable_share": 0.0},
    "2d_unlearnable50": {"ndims": 2, "cells_per_dim": 10, "unlearnable_share": 0.5},
    "5d": {"ndims": 5, "cells_per_dim": 3, "unlearnable_share": 0.0},
    "5d_unlearnable50": {"ndims": 5, "cells_per_dim": 3, "unlearnable_share": 0.5},
}
TEACHER_ORDER = ["random", "riac", "covar_gmm", "alp_gmm"]
SCORE_EVERY = 1000


def run(setting: dict, teacher_name: str, seed: int, episodes: int) -> list[float]:
    """% mastered before the first episode and after every SCORE_EVERY episodes."""
    testbed = ToyTestbed(**setting, seed=seed)
    teacher = make_teacher(TEACHERS[teacher_name][0](), testbed.low, testbed.high, seed)
    curve = [testbed.percent_mastered()]
    for episode in range(1, episodes + 1):
        levels = teacher.sample(1)
        teacher.update(levels, [testbed.episode(levels[0])])
        if episode % SCORE_EVERY == 0:
            curve.append(testbed.percent_mastered())
    return curve


def table(results: dict, episodes: int) -> str:
    # A quarter, half and all of the run, on the scoring grid.
    checkpoints = sorted(
        {max(SCORE_EVERY, e - e % SCORE_EVERY) for e in (episodes // 4, episodes // 2, episodes)}
    )
    columns = [f"@{c / 1000:g}k" for c in checkpoints]
    lines = [f"{'setting':<18} {'teacher':<10} " + " ".join(f"{c:>13}" for c in columns) + f" {'s/run':>6}"]
    for setting_name, setting in results.items():
        for teacher_name, res in setting["teachers"].items():
            cells = []
            for c in checkpoints:
                i = res["episodes"].index(c)
                cells.append(f"{res['mean'][i]:6.1f} +-{res['std'][i]:5.1f}")
            lines.append(
                f"{setting_name:<18} {teacher_name:<10} "
                + " ".join(f"{c:>13}" for c in cells)
                + f" {res['seconds_per_run']:6.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8,000 episodes and 2 seeds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/teacher_toy.json"))
    parser.add_argument("--episodes", type=int, help="episodes per run (default 20,000; --quick 8,000)")
    parser.add_argument("--seeds", type=int, help="seeds per teacher (default 5; --quick 2)")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"comma list of: {', '.join(SETTINGS)}"
    )
    parser.add_argument(
        "--teachers", default=",".join(TEACHER_ORDER), help=f"comma list of: {', '.join(TEACHERS)}"
    )
    args = parser.parse_args(argv)
    episodes = args.episodes or (8_000 if args.quick else 20_000)
    n_seeds = args.seeds or (2 if args.quick else 5)
    settings = args.settings.split(",")
    teachers = args.teachers.split(",")
    for name in settings:
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}; choose from: {', '.join(SETTINGS)}")
    for name in teachers:
        if name not in TEACHERS:
            parser.error(f"unknown teacher {name!r}; choose from: {', '.join(TEACHERS)}")
    if episodes < SCORE_EVERY or n_seeds < 1:
        parser.error(f"need --episodes >= {SCORE_EVERY} and --seeds >= 1")

    results: dict = {}
    start = time.perf_counter()
    # One BLAS/OpenMP thread: sklearn's EM is on tiny matrices, and the machine is shared.
    with threadpool_limits(limits=1):
        for setting_name in settings:
            per_teacher = {}
            for teacher_name in teachers:
                curves, seconds = [], []
                for seed in range(n_seeds):
                    t0 = time.perf_counter()
                    curves.append(run(SETTINGS[setting_name], teacher_name, seed, episodes))
                    seconds.append(time.perf_counter() - t0)
                    print(
                        f"{setting_name} {teacher_name} seed {seed}: {curves[-1][-1]:.1f}% mastered "
                        f"({seconds[-1]:.1f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
                curves_arr = np.array(curves)
                per_teacher[teacher_name] = {
                    "episodes": list(range(0, episodes + 1, SCORE_EVERY)),
                    "mean": curves_arr.mean(axis=0).round(3).tolist(),
                    "std": curves_arr.std(axis=0).round(3).tolist(),
                    "runs": curves_arr.round(3).tolist(),
                    "seconds_per_run": float(np.mean(seconds)),
                }
            results[setting_name] = {"testbed": SETTINGS[setting_name], "teachers": per_teacher}

    print(f"% of learnable cells mastered, mean +- std over {n_seeds} seeds ({episodes} episodes per run)")
    print(table(results, episodes))
    print(f"total {time.perf_counter() - start:.0f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(
                    ["python", "benchmarks/teacher_toy.py", *(argv if argv is not None else sys.argv[1:])]
                ),
                "episodes": episodes,
                "seeds": list(range(n_seeds)),
                "score_every": SCORE_EVERY,
                "metric": "% of learnable cells mastered (competence > 75)",
                "settings": results,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
