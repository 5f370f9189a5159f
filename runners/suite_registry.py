"""The registry of evaluation suites: the suite contract and ``@register_suite``.

A suite is a function ``suite(ctx: EvalContext) -> dict`` registered under a name with
``@register_suite``. It returns a JSON-serialisable dict whose ``"scalars"`` entry (flat name -> float)
goes to TensorBoard/CSV under ``eval/``; anything else (per-episode lists, tables) goes only to the JSON.
Suites may write files (PNG, CSV) into ``ctx.out_dir``. Suite modules import this registry;
``runners.evaluation`` imports every suite module, so importing it registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Agent
from envs import EnvSpec


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
