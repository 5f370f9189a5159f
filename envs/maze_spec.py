"""The spec of the level-parameterised mazes (``env=maze``). The env and its levels are ``envs.maze``, the
held-out test set comes from ``envs.maze_gen``, which builds on ``envs.maze``: the spec sits above both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from envs.base import EnvSpec
from envs.maze import MAX_STEPS, MAZE_SIZE, OBS_MODES
from envs.maze_gen import heldout_levels


@dataclass
class MazeSpec(EnvSpec):
    """MiniGrid mazes whose level (walls, lava, moss, agent, goal) is set at reset (``envs.maze``).

    ``obs`` one of image (5x5 view + direction plane, uint8), flat (float vector), full (whole grid);
    ``max_steps`` MiniGrid's episode cap (250, dcd's); ``size`` the interior side (13, dcd's 15x15 grid).
    ``max_episode_steps``, when set, replaces ``max_steps``. Without a teacher, episodes play
    domain-randomised levels. ``test_levels()`` is a fixed held-out set of structured levels
    (``envs.maze_gen.heldout_levels``); a level counts as solved (``MASTERY_RETURN``) when its return is > 0.
    """

    MASTERY_RETURN: ClassVar[float] = 0.0
    report_suites: ClassVar[tuple[str, ...]] = ("mazes", "heldout")  # zero-shot transfer (runners.maze_eval)
    TEST_SET_SIZE: ClassVar[int] = 100
    step_info_keys: ClassVar[tuple[str, ...]] = ("level", "xy")

    obs: str = "image"
    max_steps: int = MAX_STEPS
    size: int = MAZE_SIZE

    def validate(self) -> None:
        if self.obs not in OBS_MODES:
            raise ValueError(f"unknown maze obs {self.obs!r}; choose one of: {', '.join(OBS_MODES)}")
        if self.max_steps < 1:
            raise ValueError(f"maze max_steps must be >= 1, got {self.max_steps}")
        if self.size < 2:
            raise ValueError(f"maze size must be >= 2, got {self.size}")

    def gym_id(self) -> str:
        return "openrl/Maze-v0"

    def make_kwargs(self) -> dict[str, Any]:
        steps = self.max_episode_steps if self.max_episode_steps is not None else self.max_steps
        return {"size": self.size, "max_steps": int(steps), "obs": self.obs}

    def level_bounds(self) -> None:
        """Maze levels are integer encodings, not a box: continuous teachers do not apply."""

    def level_kind(self) -> str | None:
        """``maze`` for the 13x13 mazes the maze teachers generate (``MAZE_SIZE``); other sizes have no
        teacher."""
        return "maze" if self.size == MAZE_SIZE else None

    def mastery_return(self) -> float:
        return self.MASTERY_RETURN

    def score_range(self) -> tuple[float, float]:
        return (0.0, 1.0)  # MiniGrid's reward is in [0, 1): the return is already a competence

    def test_levels(self, n: int | None = None) -> np.ndarray | None:
        """The first ``n`` (``TEST_SET_SIZE``, 100, by default) held-out structured levels
        (``envs.maze_gen.heldout_levels``) as encodings, shape (n, ENCODING_LENGTH); None for sizes other than 13
        (the generators build 13x13 levels)."""
        if self.size != MAZE_SIZE:
            return None
        return heldout_levels(self.TEST_SET_SIZE if n is None else n)

    def describe(self) -> str:
        return "maze" if self.size == MAZE_SIZE else f"maze{self.size}"
