"""ALP-GMM: Absolute Learning Progress with Gaussian Mixture Models (Portelas et al., CoRL 2019).

The teacher as the reference code (flowersteam/teachDeepRL, ``teachers/algos/alp_gmm.py``) runs it:

1. After each episode on task p_new with competence r_new, find the nearest *earlier* task p_old in
   parameter space (Euclidean, over the whole history) and record
   ``ALP = |r_new - r_old|``; the first episodes get ALP 0 while the history holds at most 5 tasks.
   Then (p_new, r_new) joins the history.
2. Every ``fit_rate`` (250) episodes, fit Gaussian mixtures with k = 2..10 full-covariance components
   on the vectors ``[p, ALP]`` of the last ``fit_rate`` episodes and keep the one with the lowest AIC.
3. To sample: during the first ``fit_rate`` episodes (bootstrap) and then with probability
   ``random_task_ratio`` (20%), a task uniform in the box; otherwise pick Gaussian i with probability
   ``mean_ALP_i / sum_j mean_ALP_j`` (uniformly if all are 0), draw from it, drop the ALP coordinate
   and clip to the box.

Choices where a reading of the paper could differ from the code, and what is done here:

- Parameters enter the nearest-neighbour search and the mixture in their own units, unscaled, as in
  the reference; give parameter boxes of comparable ranges (the competence, hence ALP, is in [0, 1]).
- The reference keeps the tasks in a buffered KD-tree (rebuilt every 500 additions, newer points
  scanned); ``NearestEarlier`` does the same and returns the exact nearest earlier task.
- Each fit uses sklearn's defaults as the reference does (one EM initialisation, 100 iterations) with
  ``random_state`` = the teacher's seed at every refit, so a run is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from curricula.base import BoxTeacher, BoxTeacherConfig, proportional_choice, to_array, to_tensor
from curricula.gmm import Mixture, check_mixture_config, fit_mixture
from curricula.plotting import plot_distribution

# ALP is 0 for an episode whose history holds at most this many earlier tasks (reference: "> 5").
ALP_WARMUP = 5


@dataclass
class ALPGMMConfig(BoxTeacherConfig):
    name: str = "alp_gmm"
    fit_rate: int = 250  # episodes between two fits; also the fit window and the random bootstrap
    random_task_ratio: float = 0.2  # share of uniform tasks once the mixture exists
    min_gaussians: int = 2
    max_gaussians: int = 10
    criterion: str = "aic"  # aic | bic: which mixture to keep
    n_init: int = 1  # EM initialisations per fit (sklearn)
    max_iter: int = 100  # EM iterations per fit (sklearn)

    def validate(self) -> None:
        super().validate()
        check_mixture_config(
            self.fit_rate, self.min_gaussians, self.max_gaussians, self.criterion, self.n_init, self.max_iter
        )
        if not 0.0 <= self.random_task_ratio <= 1.0:
            raise ValueError(f"random_task_ratio must be in [0, 1], got {self.random_task_ratio}")


class NearestEarlier:
    """The tasks seen so far, with an exact nearest-neighbour query.

    A KD-tree covers the oldest ``REBUILD * (n // REBUILD)`` tasks and is rebuilt when that number
    grows; the newer ones are scanned. The split depends on n only, so a history reloaded from a
    state dict answers every query exactly as the original.
    """

    REBUILD = 500

    def __init__(self, ndims: int, tasks: np.ndarray | None = None) -> None:
        self._data = np.empty((1024, ndims)) if tasks is None else np.array(tasks, dtype=np.float64)
        self.n = 0 if tasks is None else len(tasks)
        self._tree: cKDTree | None = None
        self._tree_size = 0

    def __len__(self) -> int:
        return self.n

    @property
    def tasks(self) -> np.ndarray:
        return self._data[: self.n]

    def add(self, task: np.ndarray) -> None:
        if self.n == len(self._data):
            grown = np.empty((max(2 * self.n, 1024), self._data.shape[1]))
            grown[: self.n] = self._data
            self._data = grown
        self._data[self.n] = task
        self.n += 1

    def nearest(self, task: np.ndarray) -> int:
        """Index of the stored task nearest to ``task`` (needs at least one)."""
        covered = self.REBUILD * (self.n // self.REBUILD)
        if covered != self._tree_size:
            self._tree, self._tree_size = cKDTree(self._data[:covered]), covered
        best, best_dist = -1, np.inf
        if covered:
            best_dist, best = self._tree.query(task)
        if self.n > covered:
            dists = np.sqrt(((self._data[covered : self.n] - task) ** 2).sum(axis=1))
            j = int(np.argmin(dists))
            if dists[j] < best_dist:
                best = covered + j
        return int(best)


class ALPGMM(BoxTeacher):
    config_class = ALPGMMConfig
    cfg: ALPGMMConfig

    def __init__(self, cfg: ALPGMMConfig, low: Any, high: Any, seed: int) -> None:
        super().__init__(cfg, low, high, seed)
        self.history = NearestEarlier(self.ndims)  # task of every episode, in order
        self.competences: list[float] = []
        self.alps: list[float] = []
        self.gmm: Mixture | None = None
        # Sampling counts since the last fit, for the share of uniform tasks.
        self.sampled_since_fit = 0
        self.random_since_fit = 0

    # ----------------------------------------------------------------- sampling
    def _sample_one(self) -> np.ndarray:
        self.sampled_since_fit += 1
        if len(self.history) < self.cfg.fit_rate or self.rng.random() < self.cfg.random_task_ratio:
            self.random_since_fit += 1
            return self._uniform()
        # The ALP coordinate of a Gaussian's mean is the mean ALP of the tasks it covers.
        index = proportional_choice(self.gmm.means[:, -1], self.rng)
        task = self.gmm.sample_from(index, self.rng)[:-1]
        return np.clip(task, self.low, self.high)

    # ----------------------------------------------------------------- learning
    def _observe(self, level: np.ndarray, competence: float) -> None:
        self.alps.append(self.alp(level, competence))
        self.history.add(level)
        self.competences.append(competence)
        if len(self.history) % self.cfg.fit_rate == 0:
            self._fit()

    def alp(self, task: np.ndarray, competence: float) -> float:
        """Absolute learning progress of a new (task, competence) against the nearest earlier task."""
        if len(self.history) <= ALP_WARMUP:
            return 0.0
        return abs(competence - self.competences[self.history.nearest(task)])

    def _fit(self) -> None:
        window = self.cfg.fit_rate
        tasks_alps = np.column_stack([self.history.tasks[-window:], self.alps[-window:]])
        self.gmm = fit_mixture(
            tasks_alps,
            self.cfg.min_gaussians,
            self.cfg.max_gaussians,
            self.cfg.criterion,
            self.cfg.n_init,
            self.cfg.max_iter,
            self.seed,
        )
        self.sampled_since_fit = self.random_since_fit = 0

    # ----------------------------------------------------------------- reporting
    def log_scalars(self) -> dict[str, float]:
        window = self.cfg.fit_rate
        scalars = {
            "episodes": float(len(self.history)),
            "n_gaussians": float(0 if self.gmm is None else len(self.gmm)),
        }
        if self.alps:
            scalars["mean_alp"] = float(np.mean(self.alps[-window:]))
            scalars["mean_competence"] = float(np.mean(self.competences[-window:]))
        if self.sampled_since_fit:
            scalars["random_fraction"] = self.random_since_fit / self.sampled_since_fit
        return scalars

    def plot(self, path: str | Path) -> None:
        window = self.cfg.fit_rate
        gaussians = (
            None if self.gmm is None else (self.gmm.means, self.gmm.covariances, self.gmm.means[:, -1])
        )
        plot_distribution(
            path,
            self.history.tasks[-window:],
            np.array(self.alps[-window:]),
            "ALP",
            self.low,
            self.high,
            f"ALP-GMM after {len(self.history)} episodes",
            gaussians=gaussians,
            shape_label="mean ALP of the Gaussian",
        )

    # ----------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {
            "tasks": to_tensor(self.history.tasks),
            "competences": to_tensor(self.competences),
            "alps": to_tensor(self.alps),
            "gmm": None if self.gmm is None else self.gmm.state(),
            "sampled_since_fit": self.sampled_since_fit,
            "random_since_fit": self.random_since_fit,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.history = NearestEarlier(self.ndims, to_array(state["tasks"]).reshape(-1, self.ndims))
        self.competences = to_array(state["competences"]).tolist()
        self.alps = to_array(state["alps"]).tolist()
        self.gmm = Mixture.from_state(state["gmm"])
        self.sampled_since_fit = int(state["sampled_since_fit"])
        self.random_since_fit = int(state["random_since_fit"])
