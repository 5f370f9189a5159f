"""Pluggable evaluation suites.

A suite is a function ``suite(ctx: EvalContext) -> dict`` registered under a name with
``@register_suite``. It returns a JSON-serialisable dict whose ``"scalars"`` entry (flat name -> float)
goes to TensorBoard/CSV under ``eval/``; anything else (per-episode lists, tables) goes only to the JSON.
Suites may write files (PNG, CSV) into ``ctx.out_dir``. Method issues add suites here (coverage, goal
reaching, held-out levels) without touching the training loop; an agent names its defaults in
``Agent.eval_suites``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from envs import EnvSpec
from runners.rollout import make_vector_env


@dataclass
class EvalContext:
    agent: Agent
    env: EnvSpec
    episodes: int
    seed: int
    deterministic: bool
    out_dir: Path | None  # where a suite may write files (None during training)
    step: int


Suite = Callable[[EvalContext], dict[str, Any]]
SUITES: dict[str, Suite] = {}


def register_suite(name: str) -> Callable[[Suite], Suite]:
    def deco(fn: Suite) -> Suite:
        SUITES[name] = fn
        return fn

    return deco


def run_episodes(agent: Agent, spec: EnvSpec, episodes: int, seed: int, deterministic: bool,
                 on_step: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Play ``episodes`` full episodes one after another in a single env; per-episode return, length and
    the last ``info``. Sequential on purpose: a vector env would over-sample short episodes."""
    envs = make_vector_env(spec, 1, "sync", seed)
    results = []
    try:
        obs, info = envs.reset(seed=seed)
        total, length = 0.0, 0
        while len(results) < episodes:
            action = agent.act(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = envs.step(action)
            if on_step is not None:
                on_step(info)
            total += float(reward[0])
            length += 1
            if terminated[0] or truncated[0]:
                final_info = info.get("final_info", {})
                results.append({"return": total, "length": length, "final_info": final_info})
                total, length = 0.0, 0
    finally:
        envs.close()
    return results


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
    levels mastered (return above the family's ``MASTERY_RETURN``), as teachDeepRL reports them."""
    levels = ctx.env.test_levels()
    if levels is None:
        raise ValueError(f"env {ctx.env.describe()} has no test set of levels")
    threshold = getattr(ctx.env, "MASTERY_RETURN", None)
    env = ctx.env.make()
    returns = []
    try:
        for k, level in enumerate(levels):
            obs, _ = env.reset(seed=ctx.seed + k, options={"level": level})
            total, done = 0.0, False
            while not done:
                action = ctx.agent.act(obs[None], deterministic=ctx.deterministic)[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    returns_arr = np.array(returns)
    scalars = {"return_mean": float(returns_arr.mean()), "return_std": float(returns_arr.std())}
    if threshold is not None:
        scalars["percent_mastered"] = float(100.0 * np.mean(returns_arr > threshold))
    return {"scalars": scalars, "returns": returns, "levels": [np.asarray(lv).tolist() for lv in levels]}

# Suites of skill agents register themselves on import; at the end because they use this module.
import runners.maze_eval  # maze suites: mazes, heldout
import runners.prompt_eval
import runners.skill_eval  # noqa: F401
