"""RIAC: Robust Intelligent Adaptive Curiosity (Baranes & Oudeyer, 2009), as teachDeepRL runs it.

The reference (``teachers/algos/riac.py``) keeps a tree of regions of the parameter box:

1. Every region stores the last ``max_region_size + 1`` (task, competence) pairs that fell inside it
   (a task is added to *every* region that contains it: the root, its ancestors and its leaf).
   Its ALP is ``|mean(older half) - mean(newer half)|`` of its last ``alp_window_size`` competences
   (0 with two pairs or fewer), recomputed for every region the new task fell in.
2. A leaf that holds more than ``max_region_size`` pairs is split: ``nb_split_attempts`` random cuts
   (a dimension and a threshold uniform in the region), each redrawn until both sides hold at least
   ``min_region_size`` pairs; a cut is valid when both children keep at least ``min_dims_range_ratio``
   of the box's range in every dimension. The valid cut with the largest ``|ALP_1 - ALP_2|`` (the last
   one among ties) makes two children that inherit the pairs on their side. With no valid cut, the
   region forgets its oldest ``discard_ratio * max_region_size`` pairs.
3. Sampling: with probability ``perturb_task_ratio`` (10%) pick a region in proportion to its ALP and
   perturb its worst task (lowest competence) with N(0, ``perturb_std``) noise, clipped inside the
   region; with probability ``random_task_ratio`` (20%) a task uniform in the box; otherwise (70%) a
   region in proportion to its ALP (uniformly when all are 0) and a task uniform in it. Regions are
   all tree nodes (root included), or only the leaves with ``sampling_in_leaves_only``.

Where the reference code differs from the RIAC paper or from its own intent, and what is done here:

- Split score. The paper scores a cut by ``card(R1) * card(R2) * |ALP_1 - ALP_2|``; the reference
  multiplies by ``len`` of each child's two-element [competences, tasks] list, a constant 4, so its
  score is ``|ALP_1 - ALP_2|``. The reference's behaviour is kept (it produced the published curves).
- New children's ALP. The reference gives both children the ALPs computed for the *last* attempted
  cut instead of the chosen one, until a task falls inside them; here they get their own ALP.
- The reference redraws a cut forever when no threshold can leave ``min_region_size`` pairs on each
  side (e.g. many identical tasks); here an attempt gives up after ``MAX_CUT_DRAWS`` draws.
- ``perturb_std`` is in parameter units, as the reference's 0.1. When the chosen region holds no
  task yet (possible only before the first update) the perturbation mode samples uniformly, as the
  reference does for its very first task.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricula.base import BoxTeacher, BoxTeacherConfig, proportional_choice, to_array, to_tensor
from curricula.plotting import plot_distribution

MAX_CUT_DRAWS = 100  # draws of one split attempt before it counts as invalid
INSIDE_MARGIN = 1e-5  # perturbed tasks stay this far inside their region's faces (reference)


@dataclass
class RIACConfig(BoxTeacherConfig):
    name: str = "riac"
    max_region_size: int = 200  # pairs a leaf holds before it is split
    alp_window_size: int | None = None  # competences in a region's ALP; None = max_region_size
    nb_split_attempts: int = 50
    min_region_size: int | None = None  # pairs each side of a cut needs; None = max_region_size / 20
    min_dims_range_ratio: float = 1 / 15  # smallest child width, relative to the box's range
    discard_ratio: float = 0.25  # share of max_region_size forgotten after a failed split
    sampling_in_leaves_only: bool = False
    random_task_ratio: float = 0.2
    perturb_task_ratio: float = 0.1
    perturb_std: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.max_region_size < 2:
            raise ValueError(f"max_region_size must be >= 2, got {self.max_region_size}")
        if self.alp_window_size is not None and self.alp_window_size < 2:
            raise ValueError(f"alp_window_size must be >= 2, got {self.alp_window_size}")
        if self.nb_split_attempts < 1:
            raise ValueError(f"nb_split_attempts must be >= 1, got {self.nb_split_attempts}")
        if self.min_region_size is not None and not 1 <= self.min_region_size <= self.max_region_size // 2:
            raise ValueError(
                f"min_region_size must be in [1, max_region_size / 2], got {self.min_region_size}"
            )
        if not 0.0 <= self.min_dims_range_ratio < 0.5:
            raise ValueError(f"min_dims_range_ratio must be in [0, 0.5), got {self.min_dims_range_ratio}")
        if not 0.0 < self.discard_ratio <= 1.0:
            raise ValueError(f"discard_ratio must be in (0, 1], got {self.discard_ratio}")
        if (
            min(self.random_task_ratio, self.perturb_task_ratio) < 0
            or self.random_task_ratio + self.perturb_task_ratio > 1
        ):
            raise ValueError(
                "random_task_ratio and perturb_task_ratio must be >= 0 and sum to at most 1, got "
                f"{self.random_task_ratio} and {self.perturb_task_ratio}"
            )
        if self.perturb_std < 0:
            raise ValueError(f"perturb_std must be >= 0, got {self.perturb_std}")


class Region:
    """A box of the parameter space with the last (task, competence) pairs that fell inside it."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        parent: int,
        capacity: int,
        tasks: Any = (),
        competences: Any = (),
    ) -> None:
        self.low, self.high, self.parent = low, high, parent
        self.tasks: deque[np.ndarray] = deque(tasks, maxlen=capacity)
        self.competences: deque[float] = deque(competences, maxlen=capacity)
        self.children: list[int] = []
        self.alp = 0.0

    def contains(self, task: np.ndarray) -> bool:
        return bool(np.all(task >= self.low) and np.all(task <= self.high))


class RIAC(BoxTeacher):
    config_class = RIACConfig
    cfg: RIACConfig

    def __init__(self, cfg: RIACConfig, low: Any, high: Any, seed: int) -> None:
        super().__init__(cfg, low, high, seed)
        self.alp_window = cfg.alp_window_size or cfg.max_region_size
        self.min_region_size = cfg.min_region_size or math.ceil(cfg.max_region_size / 20)
        self.min_widths = (self.high - self.low) * cfg.min_dims_range_ratio
        self.regions = [Region(self.low, self.high, -1, self._capacity)]  # in creation order, root first
        self.episodes = 0

    @property
    def _capacity(self) -> int:
        return self.cfg.max_region_size + 1

    def region_alp(self, competences: Any) -> float:
        """|mean of the older half - mean of the newer half| of the last ``alp_window`` competences."""
        values = np.asarray(competences, dtype=np.float64)
        if len(values) <= 2:
            return 0.0
        window = min(len(values), self.alp_window)
        half = window // 2
        return float(abs(values[-window:-half].mean() - values[-half:].mean()))

    def sampling_regions(self) -> list[int]:
        if self.cfg.sampling_in_leaves_only:
            return [i for i, region in enumerate(self.regions) if not region.children]
        return list(range(len(self.regions)))

    # ----------------------------------------------------------------- sampling
    def _sample_one(self) -> np.ndarray:
        mode = self.rng.random()
        if mode < self.cfg.perturb_task_ratio:
            region = self.regions[self._choose_region()]
            if not region.competences:
                return self._uniform()
            worst = region.tasks[int(np.argmin(region.competences))]
            task = np.clip(
                self.rng.normal(worst, self.cfg.perturb_std),
                region.low + INSIDE_MARGIN,
                region.high - INSIDE_MARGIN,
            )
            # The box clip matters only for a dimension narrower than the two margins.
            return np.clip(task, self.low, self.high)
        if mode < self.cfg.perturb_task_ratio + self.cfg.random_task_ratio:
            return self._uniform()
        region = self.regions[self._choose_region()]
        return self.rng.uniform(region.low, region.high)

    def _choose_region(self) -> int:
        candidates = self.sampling_regions()
        return candidates[proportional_choice([self.regions[i].alp for i in candidates], self.rng)]

    # ----------------------------------------------------------------- learning
    def _observe(self, level: np.ndarray, competence: float) -> None:
        self.episodes += 1
        touched: list[int] = []  # regions that contain the task
        full: list[int] = []  # leaves that now hold too many pairs
        self._add(0, level, competence, touched, full)
        for index in full:
            self._split(index)
        for index in touched:
            self.regions[index].alp = self.region_alp(self.regions[index].competences)

    def _add(
        self, index: int, task: np.ndarray, competence: float, touched: list[int], full: list[int]
    ) -> None:
        region = self.regions[index]
        if not region.contains(task):
            return
        touched.append(index)
        for child in region.children:
            self._add(child, task, competence, touched, full)
        region.tasks.append(task)
        region.competences.append(competence)
        if not region.children and len(region.competences) > self.cfg.max_region_size:
            full.append(index)

    def _split(self, index: int) -> None:
        region = self.regions[index]
        tasks, competences = np.array(region.tasks), np.array(region.competences)
        best_score, best_cut = 0.0, None
        for _ in range(self.cfg.nb_split_attempts):
            cut = self._draw_cut(region, tasks)
            if cut is None:
                continue
            dim, threshold, first = cut
            first_high, second_low = region.high.copy(), region.low.copy()
            first_high[dim] = second_low[dim] = threshold
            valid = np.all(first_high - region.low >= self.min_widths) and np.all(
                region.high - second_low >= self.min_widths
            )
            score = abs(self.region_alp(competences[first]) - self.region_alp(competences[~first]))
            if valid and score >= best_score:
                best_score, best_cut = score, (first_high, second_low, first)
        if best_cut is None:
            forget = int(self.cfg.max_region_size * self.cfg.discard_ratio)
            region.tasks = deque(list(region.tasks)[forget:], maxlen=self._capacity)
            region.competences = deque(list(region.competences)[forget:], maxlen=self._capacity)
            return
        first_high, second_low, first = best_cut
        for low, high, side in ((region.low, first_high, first), (second_low, region.high, ~first)):
            child = Region(low, high, index, self._capacity, tasks[side], competences[side].tolist())
            child.alp = self.region_alp(child.competences)
            region.children.append(len(self.regions))
            self.regions.append(child)

    def _draw_cut(self, region: Region, tasks: np.ndarray) -> tuple[int, float, np.ndarray] | None:
        """A random axis-aligned cut leaving ``min_region_size`` tasks on each side, or None."""
        for _ in range(MAX_CUT_DRAWS):
            dim = int(self.rng.integers(self.ndims))
            threshold = float(self.rng.uniform(region.low[dim], region.high[dim]))
            # The first child is closed on the cut, as the reference's Box.contains is.
            first = tasks[:, dim] <= threshold
            if min(first.sum(), len(first) - first.sum()) >= self.min_region_size:
                return dim, threshold, first
        return None

    # ----------------------------------------------------------------- reporting
    def log_scalars(self) -> dict[str, float]:
        alps = [self.regions[i].alp for i in self.sampling_regions()]
        return {
            "episodes": float(self.episodes),
            "n_regions": float(len(self.regions)),
            "n_leaves": float(sum(not region.children for region in self.regions)),
            "mean_alp": float(np.mean(alps)),
            "max_alp": float(np.max(alps)),
        }

    def plot(self, path: str | Path) -> None:
        root = self.regions[0]
        leaves = [region for region in self.regions if not region.children]
        boxes = (
            np.array([r.low for r in leaves]),
            np.array([r.high for r in leaves]),
            np.array([r.alp for r in leaves]),
        )
        plot_distribution(
            path,
            np.array(root.tasks),
            np.array(root.competences),
            "competence",
            self.low,
            self.high,
            f"RIAC after {self.episodes} episodes, {len(leaves)} leaves",
            regions=boxes,
            shape_label="region ALP",
        )

    # ----------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "regions": [
                {
                    "low": to_tensor(r.low),
                    "high": to_tensor(r.high),
                    "parent": r.parent,
                    "alp": r.alp,
                    "tasks": to_tensor(np.array(r.tasks).reshape(-1, self.ndims)),
                    "competences": to_tensor(list(r.competences)),
                }
                for r in self.regions
            ],
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.episodes = int(state["episodes"])
        self.regions = []
        for entry in state["regions"]:
            region = Region(
                to_array(entry["low"]),
                to_array(entry["high"]),
                int(entry["parent"]),
                self._capacity,
                list(to_array(entry["tasks"])),
                to_array(entry["competences"]).tolist(),
            )
            region.alp = float(entry["alp"])
            if region.parent >= 0:
                self.regions[region.parent].children.append(len(self.regions))
            self.regions.append(region)
