"""The summary of an ``rl-sweep``: one table across seeds, and learning curves, from the trials' run directories.

Configurations are the trials' swept values other than ``seed`` (``sweep.json`` lists each trial's values and
run directory); the trials of one configuration are its seeds. For each configuration and metric the final
value of every seed's run (the metric's last row in ``scalars.csv``) is summarised as mean, sample standard
deviation and a 95% percentile-bootstrap interval of the mean (10,000 resamples, fixed generator, so the
same runs give the same table). The interval needs two seeds; with one it is left empty.

Written to ``<sweep>/summary/``: ``summary.md`` (markdown table), ``summary.csv`` (one row per
configuration and metric, one column per swept key) and one PNG per metric of learning curves: per
configuration the mean over seeds with a 95% bootstrap band, the seeds' curves interpolated onto the steps
they share. Unfinished or missing runs count with what they logged so far (``steps`` shows how far).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from runners.logger import CSV_NAME, read_scalars

SUMMARY_DIR = "summary"
SEED_KEY = "seed"
# Always summarised when logged: the training return and coverage, beside every eval/ metric.
DEFAULT_TRAIN_METRICS = ("train/recent_return", "train/coverage_total")
BOOTSTRAP_RESAMPLES = 10_000
BAND_RESAMPLES = 1_000


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` along axis 0 (NaN with fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    if n < 2:
        nan = np.full(values.shape[1:], np.nan)
        return (nan, nan) if values.ndim > 1 else (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return (low, high) if values.ndim > 1 else (float(low), float(high))


def _read_run(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (steps, values) of one run, one value per step (the last logged), sorted by step."""
    if not (run_dir / CSV_NAME).exists():
        return {}
    by_tag: dict[str, dict[int, float]] = defaultdict(dict)
    for row in read_scalars(run_dir):
        by_tag[row["tag"]][row["step"]] = row["value"]
    out = {}
    for tag, points in by_tag.items():
        steps = np.array(sorted(points))
        out[tag] = (steps, np.array([points[s] for s in steps]))
    return out


def _label(point: dict[str, str]) -> str:
    rest = [f"{k}={v}" for k, v in point.items() if k != SEED_KEY]
    return " ".join(rest) if rest else "all"


def _fmt(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4g}"


def summarise(sweep_path: Path, metrics: list[str] | None = None) -> dict[str, Any]:
    """Write the sweep's summary table (markdown, CSV) and learning-curve PNGs; returns the paths and text."""
    sweep_path = Path(sweep_path)
    spec = json.loads((sweep_path / "sweep.json").read_text())
    trials = spec["trials"]
    keys = [k for k in (trials[0]["point"] if trials else {}) if k != SEED_KEY]
    groups: dict[str, dict[str, Any]] = {}
    for trial in trials:
        label = _label(trial["point"])
        group = groups.setdefault(label, {"point": {k: trial["point"][k] for k in keys}, "seeds": [], "runs": []})
        group["seeds"].append(trial["point"].get(SEED_KEY, ""))
        group["runs"].append(_read_run(sweep_path / trial["run_dir"]))

    logged = sorted({tag for g in groups.values() for run in g["runs"] for tag in run})
    if metrics:
        chosen = list(metrics)
    else:
        chosen = [t for t in logged if t.startswith("eval/")] + [t for t in DEFAULT_TRAIN_METRICS if t in logged]

    rows = []
    for label, group in groups.items():
        for metric in chosen:
            finals = [(seed, run[metric][1][-1], run[metric][0][-1]) for seed, run in zip(group["seeds"], group["runs"])
                      if metric in run]
            values = np.array([v for _, v, _ in finals], dtype=float)
            low, high = bootstrap_ci(values)
            rows.append({
                "configuration": label, **group["point"], "metric": metric, "n": len(values),
                "seeds": " ".join(str(s) for s, _, _ in finals),
                "steps": int(min((s for _, _, s in finals), default=0)),
                "mean": float(values.mean()) if len(values) else math.nan,
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "ci_low": low, "ci_high": high,
            })

    out_dir = sweep_path / SUMMARY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "summary.csv"
    fields = ["configuration", *keys, "metric", "n", "seeds", "steps", "mean", "std", "ci_low", "ci_high"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

    lines = [(f"Sweep `{sweep_path.name}`: {len(trials)} trials, {len(groups)} configuration(s); final values "
              "across seeds (mean, sample std, 95% bootstrap CI of the mean)."), "",
             "| configuration | metric | seeds | steps | mean | std | 95% CI |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if math.isfinite(r["ci_low"]) else ""
        lines.append(f"| {r['configuration']} | {r['metric']} | {r['n']} | {r['steps']} | {_fmt(r['mean'])} | "
                     f"{_fmt(r['std'])} | {ci} |")
    markdown = "\n".join(lines) + "\n"
    md_path = out_dir / "summary.md"
    md_path.write_text(markdown)

    plots = [p for metric in chosen if (p := _plot(metric, groups, out_dir)) is not None]
    return {"markdown": markdown, "markdown_path": md_path, "csv_path": csv_path, "plots": plots, "rows": rows}


def _plot(metric: str, groups: dict[str, dict[str, Any]], out_dir: Path) -> Path | None:
    """Mean over seeds with a 95% bootstrap band, one line per configuration; None if nothing to draw."""
    curves = []
    for label, group in groups.items():
        runs = [run[metric] for run in group["runs"] if metric in run]
        if not runs:
            continue
        # The steps every seed reached, on the grid of the run that logged fewest points.
        last = min(steps[-1] for steps, _ in runs)
        grid = min((steps for steps, _ in runs), key=len)
        grid = grid[grid <= last]
        values = np.stack([np.interp(grid, steps, vals) for steps, vals in runs])
        curves.append((label, grid, values))
    if not curves or all(len(grid) < 2 for _, grid, _ in curves):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, grid, values in curves:
        mean = values.mean(axis=0)
        (line,) = ax.plot(grid, mean, label=f"{label} (n={len(values)})")
        if len(values) > 1:
            low, high = bootstrap_ci(values, resamples=BAND_RESAMPLES)
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean over seeds, 95% bootstrap band", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", metric) + ".png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
