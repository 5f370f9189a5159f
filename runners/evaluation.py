"""Evaluation: every suite of the suite registered, and ``evaluate`` to run them by name.

The suite contract and ``@register_suite`` are in ``runners.suite_registry``. This module holds the two
suites every agent can run (``returns``, ``test_levels``) and imports the suite modules of skill agents
(``runners.skill_eval``, ``runners.prompt_eval``) and mazes (``runners.maze_eval``), so importing it
registers them all. New suites go in a module of their own, imported here, without touching any trainer;
an agent names its defaults in ``Agent.eval_suites``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Importing the suite modules registers their suites (mazes, heldout; goal_planning, reward_prompting;
# coverage, goal_reaching, downstream).
import runners.maze_eval
import runners.prompt_eval
import runners.skill_eval  # noqa: F401
from agents.base import Agent
from envs import EnvSpec
from runners.episodes import StepBatch, agent_policy, play_episodes
from runners.suite_registry import SUITES, EvalContext, Suite, register_suite

__all__ = ["SUITES", "EvalContext", "Suite", "evaluate", "register_suite", "run_episodes"]


def run_episodes(agent: Agent, spec: EnvSpec, episodes: int, seed: int, deterministic: bool,
                 on_step: Callable[[StepBatch], None] | None = None) -> list[dict[str, Any]]:
    """Play ``episodes`` full episodes, episode ``k`` seeded ``seed + k`` (``runners.episodes.play_episodes``:
    one env per episode, in lockstep, so short episodes are not over-sampled as in a vector env);
    per-episode return, length and the last ``info``."""
    played = play_episodes(agent_policy(agent, deterministic), spec, seeds=[seed + k for k in range(episodes)],
                           on_step=on_step)
    return [{"return": float(r), "length": int(n), "final_info": info}
            for r, n, info in zip(played.returns, played.lengths, played.final_infos)]


@register_suite("returns")
def returns_suite(ctx: EvalContext) -> dict[str, Any]:
    """Mean and standard deviation of the episodic return on the env (the task's own reward)."""
    episodes = run_episodes(ctx.agent, ctx.env, ctx.episodes, ctx.seed, ctx.deterministic)
    returns = np.array([e["return"] for e in episodes])
    lengths = np.array([e["length"] for e in episodes])
    return {
        "scalars": {
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "length_mean": float(lengths.mean()),
        },
        "returns": returns.tolist(),
        "lengths": lengths.tolist(),
    }


def evaluate(ctx: EvalContext, suites: list[str]) -> dict[str, dict[str, Any]]:
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown evaluation suite {unknown[0]!r}; choose from: {', '.join(sorted(SUITES))}")
    return {name: SUITES[name](ctx) for name in suites}


@register_suite("test_levels")
def test_levels_suite(ctx: EvalContext) -> dict[str, Any]:
    """One episode on each level of the env family's fixed test set: mean return and the share of
    levels mastered (return above the family's ``mastery_return()``), as teachDeepRL reports them. Level ``k``
    is played with seed ``ctx.seed + k``, all levels in lockstep."""
    levels = ctx.env.test_levels()
    if levels is None:
        raise ValueError(f"env {ctx.env.describe()} has no test set of levels")
    threshold = ctx.env.mastery_return()
    returns = play_episodes(agent_policy(ctx.agent, ctx.deterministic), ctx.env, levels=levels, seed=ctx.seed).returns
    scalars = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
    if threshold is not None:
        scalars["percent_mastered"] = float(100.0 * np.mean(returns > threshold))
    return {"scalars": scalars, "returns": returns.tolist(), "levels": [np.asarray(lv).tolist() for lv in levels]}
