"""Zero-shot transfer suites for maze agents (``env=maze``): ``mazes`` and ``heldout``.

* ``mazes``: the UED papers' held-out named mazes (``envs.maze_named.PAPER_MAZES``: SixteenRooms,
  SixteenRoomsFewerDoors, Labyrinth, Labyrinth2, Maze, Maze2, LargeCorridor, PerfectMaze Medium / Large /
  XL). For each, ``ctx.episodes`` episodes, episode ``k`` on ``named_maze_level(name, k)`` (dcd's per-episode
  variation made deterministic: start direction, LargeCorridor's goal, a fresh PerfectMaze), each with dcd's
  episode limit for that maze. Scores as the papers report them: the solve rate (share of episodes with
  return > 0) and the mean return per maze; scalars ``solve_rate/<maze>``, ``return_mean/<maze>`` and their
  means over the mazes played, ``solve_rate/mean`` and ``return_mean/mean``.
* ``heldout``: one episode on each level of the env's held-out set of structured cave levels
  (``MazeSpec.test_levels()``: the first 100 of ``envs.maze_gen.heldout_levels``, disjoint from DRED's
  grounding training set), with the training episode limit. Scalars ``solve_rate`` and ``return_mean``
  over all of them and ``solve_rate/<structure>`` per generator (rooms, maze, obstacles, walls).

The episodes of one maze (or all held-out levels) run in lockstep, one env each, so the policy is queried
once per step for the whole batch (``runners.episodes.play_episodes``); an episode's result does not depend
on the others. With ``ctx.out_dir``
set (``rl-eval``) each suite writes ``<suite>_step<N>`` as a markdown table, a CSV, a JSON and a bar chart
(PNG) of the solve rates. An agent trained with ``obs=full`` sees the whole grid, whose shape depends on
the maze size: it only plays the 13x13 mazes, the others are reported as skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.maze import MAZE_SIZE, MazeLevel, decode
from envs.maze_spec import MazeSpec
from runners.episodes import agent_policy, play_episodes
from runners.suite_registry import EvalContext, register_suite


def _check_spec(ctx: EvalContext, suite: str) -> MazeSpec:
    if not isinstance(ctx.env, MazeSpec):
        raise ValueError(f"suite {suite!r} needs a maze env (env=maze); got {ctx.env.describe()}")  # noqa: TRY004
    return ctx.env


def play_levels(agent: Any, spec: MazeSpec, levels: Sequence[MazeLevel], max_steps: int, seed: int,
                deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
    """One episode on each level (all of one size), level ``k`` seeded ``seed + k``, with MiniGrid's episode
    limit ``max_steps``, stepped in lockstep with one batched ``agent.act`` per step
    (``runners.episodes.play_episodes``); the returns and lengths, in the order of ``levels``."""
    sizes = {lv.size for lv in levels}
    if len(sizes) != 1:
        raise ValueError(f"play_levels needs levels of one size, got sizes {sorted(sizes)}")
    level_spec = dataclasses.replace(spec, size=sizes.pop(), max_steps=max_steps, max_episode_steps=None)
    played = play_episodes(agent_policy(agent, deterministic), level_spec, levels=list(levels), seed=seed)
    return played.returns, played.lengths


def evaluate_mazes(agent: Any, spec: MazeSpec, names: Sequence[str], episodes: int, seed: int,
                   deterministic: bool) -> dict[str, dict[str, Any]]:
    """Per named maze: solve rate, mean return and length over ``episodes`` episodes, or ``skipped`` with a reason."""
    from envs.maze_named import named_maze_level, named_maze_steps

    rows: dict[str, dict[str, Any]] = {}
    for m, name in enumerate(names):
        levels = [named_maze_level(name, k) for k in range(episodes)]
        if spec.obs == "full" and levels[0].size != spec.size:
            rows[name] = {"skipped": f"obs=full agents see the whole {spec.size}x{spec.size} grid; "
                                     f"{name} is {levels[0].size}x{levels[0].size}"}
            continue
        returns, lengths = play_levels(agent, spec, levels, named_maze_steps(name), seed + 1000 * m, deterministic)
        rows[name] = {"solve_rate": float(np.mean(returns > 0)), "return_mean": float(returns.mean()),
                      "length_mean": float(lengths.mean()), "episodes": episodes, "size": levels[0].size,
                      "max_steps": named_maze_steps(name), "returns": returns.tolist()}
    return rows


def _write_outputs(out_dir: Path, stem: str, title: str, rows: dict[str, dict[str, Any]],
                   summary: dict[str, float]) -> list[str]:
    """``stem``.md / .csv / .json / .png in ``out_dir``: the table and a bar chart of the solve rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ("solve_rate", "return_mean", "length_mean", "episodes")
    lines = [f"# {title}", "", "| name | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} |" + " |" * (len(columns) - 1))
        else:
            lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                                     for c in columns) + " |")
    lines += ["", " ".join(f"{k} = {v:.3f}" for k, v in summary.items()), ""]
    (out_dir / f"{stem}.md").write_text("\n".join(lines))
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", *columns, "skipped"])
        for name, row in rows.items():
            writer.writerow([name, *(row.get(c, "") for c in columns), row.get("skipped", "")])
    (out_dir / f"{stem}.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))

    played = [(n, r["solve_rate"]) for n, r in rows.items() if "skipped" not in r]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(played) + 1.5), 3.6))
    ax.bar(range(len(played)), [v for _, v in played], color="tab:blue")
    ax.set_xticks(range(len(played)), [n for n, _ in played], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("solve rate")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}.png", dpi=100)
    plt.close(fig)
    return [f"{stem}.{ext}" for ext in ("md", "csv", "json", "png")]


@register_suite("mazes")
def mazes_suite(ctx: EvalContext, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Zero-shot solve rate and return on the papers' named mazes (see the module docstring)."""
    from envs.maze_named import PAPER_MAZES

    spec = _check_spec(ctx, "mazes")
    rows = evaluate_mazes(ctx.agent, spec, PAPER_MAZES if names is None else names, ctx.episodes, ctx.seed,
                          ctx.deterministic)
    played = {n: r for n, r in rows.items() if "skipped" not in r}
    scalars: dict[str, float] = {}
    for name, row in played.items():
        scalars[f"solve_rate/{name}"] = row["solve_rate"]
        scalars[f"return_mean/{name}"] = row["return_mean"]
    if played:
        scalars["solve_rate/mean"] = float(np.mean([r["solve_rate"] for r in played.values()]))
        scalars["return_mean/mean"] = float(np.mean([r["return_mean"] for r in played.values()]))
    result: dict[str, Any] = {"scalars": scalars, "mazes": rows}
    if ctx.out_dir is not None:
        summary = {k: v for k, v in scalars.items() if k.endswith("/mean")}
        result["files"] = _write_outputs(Path(ctx.out_dir), f"mazes_step{ctx.step}",
                                         f"Zero-shot named mazes, step {ctx.step} ({ctx.episodes} episodes each)",
                                         rows, summary)
    return result


@register_suite("heldout")
def heldout_suite(ctx: EvalContext) -> dict[str, Any]:
    """One episode on each held-out structured level: solve rate and return, overall and per structure."""
    from envs.maze_gen import grounding_structures

    spec = _check_spec(ctx, "heldout")
    encodings = spec.test_levels()
    if encodings is None:
        raise ValueError(f"env {spec.describe()} has no held-out set (only {MAZE_SIZE}x{MAZE_SIZE} mazes have one)")
    levels = [decode(code) for code in encodings]
    structures = grounding_structures("heldout", n_heldout=len(levels))
    returns, lengths = play_levels(ctx.agent, spec, levels, int(spec.make_kwargs()["max_steps"]), ctx.seed,
                                   ctx.deterministic)
    solved = returns > 0
    scalars = {"solve_rate": float(solved.mean()), "return_mean": float(returns.mean()),
               "length_mean": float(lengths.mean())}
    rows: dict[str, dict[str, Any]] = {}
    for structure in dict.fromkeys(structures):
        mask = np.array([s == structure for s in structures])
        scalars[f"solve_rate/{structure}"] = float(solved[mask].mean())
        rows[structure] = {"solve_rate": float(solved[mask].mean()), "return_mean": float(returns[mask].mean()),
                           "length_mean": float(lengths[mask].mean()), "episodes": int(mask.sum())}
    rows["all"] = {"solve_rate": scalars["solve_rate"], "return_mean": scalars["return_mean"],
                   "length_mean": scalars["length_mean"], "episodes": len(levels)}
    result: dict[str, Any] = {"scalars": scalars, "structures": rows, "returns": returns.tolist()}
    if ctx.out_dir is not None:
        result["files"] = _write_outputs(Path(ctx.out_dir), f"heldout_step{ctx.step}",
                                         f"Held-out structured mazes, step {ctx.step} ({len(levels)} levels)", rows,
                                         {"solve_rate": scalars["solve_rate"], "return_mean": scalars["return_mean"]})
    return result
