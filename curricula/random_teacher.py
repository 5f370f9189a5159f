"""Random teacher (domain randomisation): every level uniform in the parameter box.

It learns nothing from the scores; it only keeps the last ``RECENT`` episodes to plot them and to log
the student's mean competence, which makes it the baseline that every other teacher is compared to.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricula.base import BoxTeacher, BoxTeacherConfig, to_array, to_tensor
from curricula.plotting import plot_distribution

RECENT = 250  # episodes kept for plots and logs (the GMM teachers' fit window)


@dataclass
class RandomConfig(BoxTeacherConfig):
    name: str = "random"


class RandomTeacher(BoxTeacher):
    config_class = RandomConfig

    def __init__(self, cfg: RandomConfig, low: Any, high: Any, seed: int) -> None:
        super().__init__(cfg, low, high, seed)
        self.episodes = 0
        self.recent: deque[tuple[np.ndarray, float]] = deque(maxlen=RECENT)

    def _sample_one(self) -> np.ndarray:
        return self._uniform()

    def _observe(self, level: np.ndarray, competence: float) -> None:
        self.episodes += 1
        self.recent.append((level, competence))

    def log_scalars(self) -> dict[str, float]:
        scalars = {"episodes": float(self.episodes)}
        if self.recent:
            scalars["mean_competence"] = float(np.mean([c for _, c in self.recent]))
        return scalars

    def plot(self, path: str | Path) -> None:
        levels = np.array([level for level, _ in self.recent]).reshape(-1, self.ndims)
        competences = np.array([c for _, c in self.recent])
        plot_distribution(
            path,
            levels,
            competences,
            "competence",
            self.low,
            self.high,
            f"Random, last {len(competences)} of {self.episodes} episodes",
        )

    def _state(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "recent_levels": to_tensor(np.array([level for level, _ in self.recent]).reshape(-1, self.ndims)),
            "recent_competences": to_tensor([c for _, c in self.recent]),
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.episodes = int(state["episodes"])
        levels, competences = to_array(state["recent_levels"]), to_array(state["recent_competences"])
        self.recent = deque(zip(levels, competences.tolist()), maxlen=RECENT)
