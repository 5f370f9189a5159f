"""The toy testbed of teachDeepRL: a simulated student whose competence grows cell by cell.

Not an RL environment: one ``episode(param)`` is one practice of the task ``param`` in the unit
hypercube [0, 1]^ndims, and it returns the student's competence there. The rules are those of the
reference (flowersteam/teachDeepRL, ``toy_env/toy_env.py``):

- The cube is split into a grid of cells (10 per dimension in the paper's 2-D setting; here any
  number per dimension, also different per dimension). A parameter on a cell's upper face belongs to
  the upper cell, except 1.0, which falls in the last cell.
- Practising a cell adds 1 to its competence (capped at 100) only if it is *unlocked*: it is the origin
  cell, or one of its "previous" neighbours has competence >= 75. The previous neighbours of cell c are
  the cells c - s for every non-zero s in {0, 1}^ndims (diagonals included), indices clipped at 0.
- The episode returns the cell's competence / 100 (after the practice).
- A cell is *mastered* when its competence is > 75 (strictly, while unlocking needs >= 75); the score
  is the percentage of mastered cells.

Unlearnable cells are an addition of this suite (the reference's toy has none; the paper studies
robustness to unlearnable tasks on BipedalWalker): a share of the cells whose competence never grows,
so a teacher that samples them wastes episodes. They are drawn at random under one constraint: every
learnable cell stays reachable from the origin through learnable previous neighbours, so all learnable
cells can still be mastered. ``percent_mastered`` counts mastered cells among the *learnable* ones
(with no unlearnable cell this is the reference's score).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

COMPETENCE_CAP = 100  # practices a cell can absorb
UNLOCK = 75  # a previous neighbour with competence >= UNLOCK unlocks a cell; > UNLOCK is mastered


class ToyTestbed:
    """``ToyTestbed(ndims, cells_per_dim, unlearnable_share, seed).episode(param) -> competence``."""

    def __init__(
        self,
        ndims: int = 2,
        cells_per_dim: int | Sequence[int] = 10,
        unlearnable_share: float = 0.0,
        seed: int = 0,
    ) -> None:
        if ndims < 1:
            raise ValueError(f"ndims must be >= 1, got {ndims}")
        cells = [cells_per_dim] * ndims if np.ndim(cells_per_dim) == 0 else list(cells_per_dim)
        if len(cells) != ndims or min(cells) < 1:
            raise ValueError(f"cells_per_dim must be one count >= 1 or {ndims} of them, got {cells_per_dim}")
        if not 0.0 <= unlearnable_share < 1.0:
            raise ValueError(f"unlearnable_share must be in [0, 1), got {unlearnable_share}")
        self.ndims = ndims
        self.cells = np.array(cells, dtype=np.int64)
        self.n_cells = int(np.prod(self.cells))
        self.low, self.high = np.zeros(ndims), np.ones(ndims)
        self.previous = self._previous_neighbours()
        self._by_index_sum = self._cells_by_index_sum()
        # Competences, flat in C order, plus one slot that pads ``previous`` and stays 0.
        self._competence = np.zeros(self.n_cells + 1, dtype=np.int64)
        self.learnable = self._draw_learnable(
            round(unlearnable_share * self.n_cells), np.random.default_rng(seed)
        )

    # ----------------------------------------------------------------- the student
    def episode(self, param: Sequence[float]) -> float:
        """Practise the task ``param`` once; the competence (in [0, 1]) of its cell afterwards."""
        p = np.asarray(param, dtype=np.float64)
        if p.shape != (self.ndims,) or not np.all((p >= 0.0) & (p <= 1.0)):
            raise ValueError(
                f"toy testbed parameters are {self.ndims} numbers in [0, 1], got {np.asarray(param).tolist()}"
            )
        cell = self.cell_of(p)
        if self.learnable[cell] and (cell == 0 or (self._competence[self.previous[cell]] >= UNLOCK).any()):
            self._competence[cell] = min(self._competence[cell] + 1, COMPETENCE_CAP)
        return self._competence[cell] / COMPETENCE_CAP

    def percent_mastered(self) -> float:
        mastered = self._competence[: self.n_cells] > UNLOCK
        return 100.0 * np.count_nonzero(mastered & self.learnable) / np.count_nonzero(self.learnable)

    def cell_of(self, param: np.ndarray) -> int:
        """Flat (C-order) index of the cell holding ``param``."""
        index = np.minimum((param * self.cells).astype(np.int64), self.cells - 1)
        return int(np.ravel_multi_index(index, self.cells))

    @property
    def competence(self) -> np.ndarray:
        """Competence of every cell (0..100), shaped as the grid."""
        return self._competence[: self.n_cells].reshape(self.cells)

    # ----------------------------------------------------------------- the grid
    def _previous_neighbours(self) -> np.ndarray:
        """(n_cells, 2^ndims - 1) flat indices of each cell's previous neighbours; n_cells pads."""
        grid = np.stack(np.unravel_index(np.arange(self.n_cells), self.cells), axis=1)
        steps = np.array([s for s in itertools.product((0, 1), repeat=self.ndims) if any(s)])
        neighbours = np.maximum(grid[:, None, :] - steps[None, :, :], 0)
        flat = np.ravel_multi_index(tuple(np.moveaxis(neighbours, -1, 0)), self.cells)
        flat[flat == np.arange(self.n_cells)[:, None]] = self.n_cells  # clipping back onto the cell itself
        return flat

    def _draw_learnable(self, n_unlearnable: int, rng: np.random.Generator) -> np.ndarray:
        """Learnable mask with ``n_unlearnable`` cells off and every learnable cell reachable.

        Cells are switched off in random order unless that would cut a learnable cell off the origin.
        The origin stays learnable, and a learnable cell without learnable successors can always go,
        so the passes end.
        """
        if n_unlearnable > self.n_cells - 1:
            raise ValueError(f"at most {self.n_cells - 1} of {self.n_cells} cells can be unlearnable")
        learnable = np.ones(self.n_cells, dtype=bool)
        removed = 0
        while removed < n_unlearnable:
            for cell in rng.permutation(np.arange(1, self.n_cells)):
                if removed == n_unlearnable:
                    break
                if not learnable[cell]:
                    continue
                learnable[cell] = False
                if self._all_reachable(learnable):
                    removed += 1
                else:
                    learnable[cell] = True
        return learnable

    def _all_reachable(self, learnable: np.ndarray) -> bool:
        """Whether every learnable cell can be unlocked through learnable previous neighbours."""
        reachable = np.zeros(self.n_cells + 1, dtype=bool)
        reachable[0] = learnable[0]
        # Previous neighbours have a smaller index sum, so one sweep by index sum settles every cell.
        for cells in self._by_index_sum:
            reachable[cells] = learnable[cells] & reachable[self.previous[cells]].any(axis=1)
        return bool(np.array_equal(reachable[: self.n_cells], learnable))

    def _cells_by_index_sum(self) -> list[np.ndarray]:
        """Flat indices of the cells whose grid indices sum to 1, 2, ... (the origin alone sums to 0)."""
        index_sum = np.stack(np.unravel_index(np.arange(self.n_cells), self.cells), axis=1).sum(axis=1)
        return [np.flatnonzero(index_sum == value) for value in range(1, int(index_sum.max()) + 1)]
