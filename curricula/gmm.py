"""Gaussian mixtures shared by ALP-GMM and Covar-GMM.

Both reference teachers fit, every ``fit_rate`` episodes, one scikit-learn ``GaussianMixture`` per
number of components k in [min_gaussians, max_gaussians] (full covariances, sklearn's EM defaults:
``n_init=1``, ``max_iter=100``) and keep the one with the lowest information criterion. A fitted
mixture is kept as three arrays (weights, means, covariances) rather than as the sklearn object, so it
goes into a state dict as tensors and sampling after a reload uses the very same numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from curricula.base import to_array, to_tensor

CRITERIA = ("aic", "bic")


@dataclass
class Mixture:
    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, dims)
    covariances: np.ndarray  # (k, dims, dims)

    def __len__(self) -> int:
        return len(self.weights)

    def sample_from(self, index: int, rng: np.random.Generator) -> np.ndarray:
        return rng.multivariate_normal(self.means[index], self.covariances[index], method="cholesky")

    def state(self) -> dict[str, Any]:
        return {
            "weights": to_tensor(self.weights),
            "means": to_tensor(self.means),
            "covariances": to_tensor(self.covariances),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Mixture | None:
        if state is None:
            return None
        return cls(to_array(state["weights"]), to_array(state["means"]), to_array(state["covariances"]))


def fit_mixture(
    data: np.ndarray, min_k: int, max_k: int, criterion: str, n_init: int, max_iter: int, seed: int
) -> Mixture:
    """The mixture with the lowest AIC (or BIC) among k = min_k..max_k components fitted on ``data``."""
    best, best_score = None, np.inf
    for k in range(min_k, max_k + 1):
        gmm = GaussianMixture(
            n_components=k, covariance_type="full", n_init=n_init, max_iter=max_iter, random_state=seed
        )
        # An EM run stopped by max_iter is still a usable fit (the reference ignores it too).
        with warnings.catch_warnings(), np.errstate(under="ignore"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(data)
        score = gmm.aic(data) if criterion == "aic" else gmm.bic(data)
        if score < best_score:
            best, best_score = gmm, score
    return Mixture(best.weights_.copy(), best.means_.copy(), best.covariances_.copy())


def check_mixture_config(
    fit_rate: int, min_k: int, max_k: int, criterion: str, n_init: int, max_iter: int
) -> None:
    if fit_rate < 1:
        raise ValueError(f"fit_rate must be >= 1, got {fit_rate}")
    if not 1 <= min_k <= max_k:
        raise ValueError(f"need 1 <= min_gaussians <= max_gaussians, got {min_k} and {max_k}")
    if max_k > fit_rate:
        raise ValueError(f"max_gaussians ({max_k}) cannot exceed the {fit_rate} points of a fit (fit_rate)")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be >= 1, got {n_init} and {max_iter}")
