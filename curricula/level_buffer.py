"""Prioritised level replay's buffer and replay distribution (Jiang et al. 2021, "Prioritized Level Replay").

PLR keeps the levels it has scored, each with its latest score S_i and the time it was last sampled, and
replays level i with probability

    P_replay(l_i) = (1 - rho) * P_S(l_i) + rho * P_C(l_i)

* P_S(l_i) = h(S_i)^(1/beta) / sum_j h(S_j)^(1/beta), the rank prioritisation h(S_i) = 1 / rank(S_i) (rank 1
  = the highest score) with temperature beta applied as the exponent 1/beta. Two bugs of public re-
  implementations are avoided here: dividing by the temperature instead of using it as an exponent,
  and ranks that reach 0 (division by zero). Tied scores share the best rank of their group, so equal
  scores get equal probability whatever their order in the buffer (dcd breaks ties by its sort order,
  giving tied levels different probabilities); ranks start at 1, so the weights are finite and the top
  level's weight is 1, hence the normaliser is >= 1.
* P_C(l_i) = C_i / sum_j C_j, the staleness C_i = c - C'_i: levels handed out since level i was last
  sampled (c counts every level the teacher hands out, C'_i is c when i was last sampled). Uniform when
  every level was just sampled.

Both distributions are over the levels the buffer holds and has scores for (``seen``), optionally
restricted to a subset (``support``: DRED ranks its dataset levels apart). ``LevelBuffer`` stores levels
as integer vectors (the maze encoding), found back by their bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def rank_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """P_S: h(S_i)^(1/beta) normalised, h(S_i) = 1/rank(S_i), rank 1 for the highest score; tied scores share
    the best rank of their group. Empty in, empty out."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        return scores.copy()
    if temperature <= 0:
        raise ValueError(f"rank temperature must be > 0, got {temperature}")
    ascending = np.sort(scores)
    # rank = 1 + number of strictly higher scores (>= 1: no division by zero)
    ranks = 1.0 + scores.size - np.searchsorted(ascending, scores, side="right")
    weights = ranks ** (-1.0 / temperature)  # (1 / rank) ** (1 / beta), beta an exponent
    return weights / weights.sum()


def staleness_weights(staleness: np.ndarray) -> np.ndarray:
    """P_C: staleness normalised; uniform when every level is fresh (all zero)."""
    staleness = np.asarray(staleness, dtype=np.float64).reshape(-1)
    total = staleness.sum()
    if staleness.size == 0 or total <= 0:
        return np.full(staleness.size, 1.0 / max(staleness.size, 1))
    return staleness / total


def replay_distribution(scores: np.ndarray, staleness: np.ndarray, temperature: float,
                        staleness_coef: float) -> np.ndarray:
    """P_replay = (1 - rho) P_S + rho P_C over the given levels."""
    return (1.0 - staleness_coef) * rank_weights(scores, temperature) + staleness_coef * staleness_weights(staleness)


def level_key(level: Any) -> bytes:
    """The identity of a level: the bytes of its int64 encoding."""
    return np.ascontiguousarray(level, dtype=np.int64).tobytes()


class LevelBuffer:
    """At most ``capacity`` levels with what PLR and DRED remember of each.

    Per slot: the level, its score S_i (``scores``) and DRED's grounded score (``secondary``), the best
    return ever obtained on it (``max_returns``, -inf before any episode), the teacher's sample count when
    it was last sampled (``last_sampled``), whether it has been scored (``seen``) and whether it may never be
    evicted (``protected``: DRED's dataset levels). Slots are filled in order; ``put`` into an occupied
    slot replaces its level.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"level buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.levels: np.ndarray | None = None  # [capacity, level length] int64, allocated by the first put
        self.scores = np.zeros(self.capacity)
        self.secondary = np.zeros(self.capacity)
        self.max_returns = np.full(self.capacity, -np.inf)
        self.last_sampled = np.zeros(self.capacity, dtype=np.int64)
        self.seen = np.zeros(self.capacity, dtype=bool)
        self.protected = np.zeros(self.capacity, dtype=bool)
        self.size = 0
        self._index: dict[bytes, int] = {}

    def __len__(self) -> int:
        return self.size

    @property
    def full(self) -> bool:
        return self.size == self.capacity

    def find(self, level: Any) -> int | None:
        return self._index.get(level_key(level))

    def put(self, level: Any, slot: int | None = None, last_sampled: int = 0, protected: bool = False) -> int:
        """Store ``level`` in the next free slot (``slot=None``) or in place of slot ``slot``'s level, with fresh
        statistics; returns the slot."""
        level = np.asarray(level, dtype=np.int64).reshape(-1)
        if self.levels is None:
            self.levels = np.zeros((self.capacity, level.size), dtype=np.int64)
        if level.size != self.levels.shape[1]:
            raise ValueError(f"level buffer holds levels of length {self.levels.shape[1]}, got one of {level.size}")
        if slot is None:
            if self.full:
                raise ValueError("level buffer is full; name the slot to replace")
            slot = self.size
            self.size += 1
        else:
            if not 0 <= slot < self.size:
                raise ValueError(f"cannot replace slot {slot} of a buffer holding {self.size} levels")
            if self.protected[slot]:
                raise ValueError(f"slot {slot} holds a protected level")
            self._index.pop(level_key(self.levels[slot]), None)
        self.levels[slot] = level
        self._index[level_key(level)] = slot
        self.scores[slot] = self.secondary[slot] = 0.0
        self.max_returns[slot] = -np.inf
        self.last_sampled[slot] = last_sampled
        self.seen[slot] = False
        self.protected[slot] = protected
        return slot

    def state(self) -> dict[str, Any]:
        """Plain tensors of the filled slots."""
        n = self.size
        levels = np.zeros((0, 0), np.int64) if self.levels is None else self.levels[:n]
        return {
            "capacity": self.capacity,
            "levels": torch.from_numpy(np.ascontiguousarray(levels).copy()),
            "scores": torch.from_numpy(self.scores[:n].copy()),
            "secondary": torch.from_numpy(self.secondary[:n].copy()),
            "max_returns": torch.from_numpy(self.max_returns[:n].copy()),
            "last_sampled": torch.from_numpy(self.last_sampled[:n].copy()),
            "seen": torch.from_numpy(self.seen[:n].copy()),
            "protected": torch.from_numpy(self.protected[:n].copy()),
        }

    def load(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"level buffer state has capacity {int(state['capacity'])}, this buffer {self.capacity}")
        levels = state["levels"].cpu().numpy().astype(np.int64)
        n = len(state["scores"])
        self.__init__(self.capacity)
        for slot in range(n):
            self.put(levels[slot])
        for name in ("scores", "secondary", "max_returns", "last_sampled", "seen", "protected"):
            getattr(self, name)[:n] = state[name].cpu().numpy()
