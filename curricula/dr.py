"""Domain randomisation on mazes: every episode on a fresh level of the env's own random distribution.

The baseline of the unsupervised-environment-design papers (PAIRED, PLR, ACCEL, DRED all compare with it):
``sample`` returns ``encode(random_level(rng))`` (``envs.maze``: random walls, agent and goal on free
cells, as dcd's domain-randomised MultiGrid), ``update`` learns nothing and only keeps the last returns and
levels for logs and plots. The student learns from every episode.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from curricula.base import LevelTeacherConfig
from curricula.maze_teacher import RECENT, MazeTeacher, stack_levels


@dataclass
class DRConfig(LevelTeacherConfig):
    name: str = "dr"


class DomainRandomization(MazeTeacher):
    config_class = DRConfig

    def __init__(self, cfg: DRConfig, seed: int, generator=None) -> None:
        super().__init__(cfg, seed, generator)
        self.recent_levels: deque[tuple[np.ndarray, float]] = deque(maxlen=RECENT)

    def _next_level(self) -> tuple[np.ndarray, bool]:
        return self.generator(self.rng), True

    def _observe(self, level: np.ndarray, score: float, ret: float) -> None:
        self.recent_levels.append((level, ret))

    def _plot_levels(self) -> tuple[list[np.ndarray], list[str]]:
        last = list(self.recent_levels)[-16:]
        return [level for level, _ in last], [f"return {ret:.2f}" for _, ret in last]

    def _state(self) -> dict[str, Any]:
        return {"recent_levels": stack_levels([level for level, _ in self.recent_levels]),
                "recent_level_returns": torch.tensor([ret for _, ret in self.recent_levels], dtype=torch.float64)}

    def _load(self, state: dict[str, Any]) -> None:
        levels = state["recent_levels"].numpy().astype(np.int64)
        self.recent_levels = deque(zip(levels, state["recent_level_returns"].tolist()), maxlen=RECENT)
