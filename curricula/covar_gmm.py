"""Covar-GMM (Moulin-Frier et al., 2014), the variant run as a baseline by teachDeepRL.

As the reference code (``teachers/algos/covar_gmm.py``) does it:

1. Each episode is recorded as ``[p, t, r]``: the task, its *time* relative to the current batch of
   ``fit_rate`` episodes (t = (episode index mod fit_rate) / fit_rate, in [0, 1)) and the competence.
2. Every ``fit_rate`` (250) episodes, fit Gaussian mixtures with k = 2..10 full-covariance components
   on the last ``fit_rate`` vectors and keep the one with the lowest AIC.
3. To sample: uniform during the first ``fit_rate`` episodes and then with probability
   ``random_task_ratio`` (20%); otherwise pick Gaussian i in proportion to its learning progress
   ``LP_i = max(0, Cov_i(t, r))`` (a competence that rises with time inside the Gaussian), draw from it,
   drop the time and competence coordinates and clip to the box.

Differences from the reference: it builds fresh mixtures without a ``random_state`` (runs are not
reproducible); here every fit is seeded with the teacher's seed, as its ALP-GMM does.
``absolute_lp=True`` is the reference's option of using |Cov(t, r)| (forgetting counts as progress).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricula.base import BoxTeacher, BoxTeacherConfig, proportional_choice, to_array, to_tensor
from curricula.gmm import Mixture, check_mixture_config, fit_mixture
from curricula.plotting import plot_distribution


@dataclass
class CovarGMMConfig(BoxTeacherConfig):
    name: str = "covar_gmm"
    fit_rate: int = 250  # episodes between two fits; also the fit window and the random bootstrap
    random_task_ratio: float = 0.2
    absolute_lp: bool = False  # LP = |Cov(t, r)| instead of max(0, Cov(t, r))
    min_gaussians: int = 2
    max_gaussians: int = 10
    criterion: str = "aic"  # aic | bic
    n_init: int = 1
    max_iter: int = 100

    def validate(self) -> None:
        super().validate()
        check_mixture_config(
            self.fit_rate, self.min_gaussians, self.max_gaussians, self.criterion, self.n_init, self.max_iter
        )
        if not 0.0 <= self.random_task_ratio <= 1.0:
            raise ValueError(f"random_task_ratio must be in [0, 1], got {self.random_task_ratio}")


class CovarGMM(BoxTeacher):
    config_class = CovarGMMConfig
    cfg: CovarGMMConfig

    def __init__(self, cfg: CovarGMMConfig, low: Any, high: Any, seed: int) -> None:
        super().__init__(cfg, low, high, seed)
        self.tasks_times_competences: list[np.ndarray] = []  # [p, t, r] of every episode
        self.gmm: Mixture | None = None
        self.sampled_since_fit = 0
        self.random_since_fit = 0

    def learning_progress(self) -> np.ndarray:
        """LP of each Gaussian: the covariance of its time and competence coordinates."""
        covariance = self.gmm.covariances[:, -2, -1]
        return np.abs(covariance) if self.cfg.absolute_lp else np.maximum(covariance, 0.0)

    def _sample_one(self) -> np.ndarray:
        self.sampled_since_fit += 1
        if (
            len(self.tasks_times_competences) < self.cfg.fit_rate
            or self.rng.random() < self.cfg.random_task_ratio
        ):
            self.random_since_fit += 1
            return self._uniform()
        index = proportional_choice(self.learning_progress(), self.rng)
        task = self.gmm.sample_from(index, self.rng)[:-2]
        return np.clip(task, self.low, self.high)

    def _observe(self, level: np.ndarray, competence: float) -> None:
        episode = len(self.tasks_times_competences)
        time = (episode % self.cfg.fit_rate) / self.cfg.fit_rate
        self.tasks_times_competences.append(np.concatenate([level, [time, competence]]))
        if (episode + 1) % self.cfg.fit_rate == 0:
            data = np.array(self.tasks_times_competences[-self.cfg.fit_rate :])
            self.gmm = fit_mixture(
                data,
                self.cfg.min_gaussians,
                self.cfg.max_gaussians,
                self.cfg.criterion,
                self.cfg.n_init,
                self.cfg.max_iter,
                self.seed,
            )
            self.sampled_since_fit = self.random_since_fit = 0

    def _recent(self) -> np.ndarray:
        return np.array(self.tasks_times_competences[-self.cfg.fit_rate :]).reshape(-1, self.ndims + 2)

    def log_scalars(self) -> dict[str, float]:
        scalars = {
            "episodes": float(len(self.tasks_times_competences)),
            "n_gaussians": float(0 if self.gmm is None else len(self.gmm)),
        }
        if self.gmm is not None:
            scalars["mean_lp"] = float(np.mean(self.learning_progress()))
        if self.tasks_times_competences:
            scalars["mean_competence"] = float(np.mean(self._recent()[:, -1]))
        if self.sampled_since_fit:
            scalars["random_fraction"] = self.random_since_fit / self.sampled_since_fit
        return scalars

    def plot(self, path: str | Path) -> None:
        recent = self._recent()
        gaussians = None
        if self.gmm is not None:
            # Drop the time coordinate so that a 1-D space shows (parameter, competence) ellipses.
            keep = [*range(self.ndims), self.ndims + 1]
            gaussians = (
                self.gmm.means[:, keep],
                self.gmm.covariances[:, keep][:, :, keep],
                self.learning_progress(),
            )
        plot_distribution(
            path,
            recent[:, : self.ndims],
            recent[:, -1],
            "competence",
            self.low,
            self.high,
            f"Covar-GMM after {len(self.tasks_times_competences)} episodes",
            gaussians=gaussians,
            shape_label="learning progress (time-competence covariance)",
        )

    def _state(self) -> dict[str, Any]:
        return {
            "tasks_times_competences": to_tensor(
                np.array(self.tasks_times_competences).reshape(-1, self.ndims + 2)
            ),
            "gmm": None if self.gmm is None else self.gmm.state(),
            "sampled_since_fit": self.sampled_since_fit,
            "random_since_fit": self.random_since_fit,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.tasks_times_competences = list(to_array(state["tasks_times_competences"]))
        self.gmm = Mixture.from_state(state["gmm"])
        self.sampled_since_fit = int(state["sampled_since_fit"])
        self.random_since_fit = int(state["random_since_fit"])
