"""Prioritised Level Replay (Jiang, Grefenstette, Rocktaeschel, ICML 2021) and robust PLR / PLR-perp (Jiang,
Dennis et al., NeurIPS 2021, "Replay-Guided Adversarial Environment Design") on mazes.

The algorithm, as facebookresearch/dcd runs it on an unbounded level space (``level_sampler.py`` with
``sample_full_distribution``):

1. Sampling. Once the buffer is warm (at least ``warm_fraction`` of ``buffer_size`` levels scored, dcd's
   ``level_replay_rho``), replay a buffer level with probability p (``replay_prob``), drawn from
   P_replay = (1 - rho) P_S + rho P_C (``curricula.level_buffer``: rank prioritisation with temperature
   beta as the exponent 1/beta, staleness weight rho); otherwise (and always while the buffer is cold)
   play a new level from the generator (the env's domain randomisation).
2. Scoring. After an episode on level l its score S is the configured ``score`` of the episode, computed
   by the runner from the student's GAE (``curricula.base.SCORE_KINDS``): positive value loss
   mean_t max(A_t, 0) (dcd's default for mazes), L1 value loss mean_t |A_t|, or MaxMC
   mean_t (R_max(l) - V_t) with R_max the best return ever obtained on l (kept here per level).
3. Buffer update. A level already in the buffer takes the new score (dcd's alpha = 1). A new level enters
   while the buffer has room; once full it replaces the level of lowest replay probability if that
   level's score is not higher (dcd's ``replay_support`` priority). A new level's staleness counts from
   when it was handed out.
4. Robust PLR (``robust=true``): the student takes no gradient from episodes on new levels; they are only
   played to score the levels (the runner masks them out of PPO's losses, see ``agents.ppo``). Only
   replayed (curated) levels are learnt from.

Choices where this differs from the reference code:

- Replay decisions are per episode (per env, when its next episode is queued), as in PLR's original
  paper, not per rollout of all envs (dcd's UED runner resets every env to replay or to new levels
  together); a per-episode mask gives robust PLR's "no gradient on new levels" in a streaming runner.
- An episode is scored once it has ended, over all its steps, instead of dcd's partial scores merged
  across rollouts (the mean over the steps is the same; episodes still running at an update are not
  committed early).
- Tied scores share a rank (see ``rank_weights``); dcd breaks ties by sort order.
- Student: the papers train PPO with an LSTM (256 units, lr 1e-4, gamma 0.995). The suite's PPO is
  feed-forward; it sees the maze env's 5x5 egocentric view with the agent's direction as an extra plane
  (``envs.maze``, ``obs=image``), the documented substitute. Without memory, mazes that need to remember
  where the agent has been (Labyrinth, PerfectMaze) are harder for it than for the papers' students.
- Defaults are dcd's robust-PLR maze settings (buffer 4000, replay probability 0.5, warm at half full,
  positive value loss, rank transform with beta = 0.3, staleness rho = 0.3). With 4000 levels the buffer
  is warm after 2000 scored episodes, i.e. never in a laptop-sized run: give short runs a smaller
  ``curriculum.buffer_size``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from curricula.base import LevelTeacherConfig
from curricula.level_buffer import LevelBuffer, level_key, replay_distribution
from curricula.maze_teacher import RECENT, MazeTeacher

PLR_SCORES = ("pvl", "l1vl", "maxmc")
# New levels handed out and not scored yet are remembered (for their staleness) up to this many.
MAX_IN_FLIGHT = 4096


@dataclass
class PLRConfig(LevelTeacherConfig):
    name: str = "plr"
    score: str = "pvl"  # pvl | l1vl | maxmc (see curricula.base.SCORE_KINDS)
    buffer_size: int = 4000
    replay_prob: float = 0.5  # p: replay a buffer level (once warm), else a new level
    warm_fraction: float = 0.5  # replay starts once this share of the buffer is filled (dcd: level_replay_rho)
    temperature: float = 0.3  # beta of the rank prioritisation, applied as the exponent 1/beta
    staleness_coef: float = 0.3  # rho: weight of the staleness distribution
    robust: bool = False  # PLR-perp: no gradient from episodes on new (exploratory) levels

    def score_kind(self) -> str:
        return self.score

    def validate(self) -> None:
        if self.score not in PLR_SCORES:
            raise ValueError(f"unknown score {self.score!r}; choose one of: {', '.join(PLR_SCORES)}")
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")
        for key in ("replay_prob", "warm_fraction", "staleness_coef"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class PLR(MazeTeacher):
    config_class = PLRConfig
    cfg: PLRConfig

    def __init__(self, cfg: PLRConfig, seed: int, generator=None) -> None:
        super().__init__(cfg, seed, generator)
        self.buffer = LevelBuffer(cfg.buffer_size)
        self.in_flight: dict[bytes, int] = {}  # new levels handed out: the sample count when they were
        self.recent_replays: deque[bool] = deque(maxlen=RECENT)  # replay decisions of the last levels
        self.inserted = 0  # new levels that entered the buffer
        self.rejected = 0  # new levels that scored below the buffer's weakest

    # ----------------------------------------------------------------- sampling
    @property
    def warm(self) -> bool:
        return len(self.buffer) > 0 and len(self.buffer) >= self.cfg.warm_fraction * self.buffer.capacity

    def replay_weights(self) -> np.ndarray:
        """P_replay over the buffer's levels (slots 0..size-1)."""
        n = len(self.buffer)
        staleness = self.samples - self.buffer.last_sampled[:n]
        return replay_distribution(self.buffer.scores[:n], staleness, self.cfg.temperature, self.cfg.staleness_coef)

    def _next_level(self) -> tuple[np.ndarray, bool]:
        if self.warm and self.rng.random() < self.cfg.replay_prob:
            slot = int(self.rng.choice(len(self.buffer), p=self.replay_weights()))
            self.buffer.last_sampled[slot] = self.samples
            self.recent_replays.append(True)
            return self.buffer.levels[slot].copy(), True
        level = np.asarray(self.generator(self.rng), dtype=np.int64)
        self.in_flight[level_key(level)] = self.samples
        if len(self.in_flight) > MAX_IN_FLIGHT:  # episodes that never reported back (a resumed run)
            self.in_flight.pop(next(iter(self.in_flight)))
        self.recent_replays.append(False)
        return level, not self.cfg.robust

    # ----------------------------------------------------------------- scores
    def _observe(self, level: np.ndarray, score: float, ret: float) -> None:
        slot = self.buffer.find(level)
        if self.cfg.score == "maxmc":  # the runner's mean_t (R - V_t) -> mean_t (R_max - V_t)
            best = max(ret, self.buffer.max_returns[slot] if slot is not None else -np.inf)
            score += best - ret
        if slot is None:
            slot = self._insert(level, score)
            if slot is None:
                return
        self.buffer.scores[slot] = score
        self.buffer.seen[slot] = True
        self.buffer.max_returns[slot] = max(self.buffer.max_returns[slot], ret)

    def _insert(self, level: np.ndarray, score: float) -> int | None:
        """A slot for a new level: a free one, else the least likely replay if its score is not higher."""
        handed_out = self.in_flight.pop(level_key(level), self.samples)
        if not self.buffer.full:
            self.inserted += 1
            return self.buffer.put(level, last_sampled=handed_out)
        weakest = int(np.argmin(self.replay_weights()))
        if self.buffer.scores[weakest] > score:
            self.rejected += 1
            return None
        self.inserted += 1
        return self.buffer.put(level, slot=weakest, last_sampled=handed_out)

    # ----------------------------------------------------------------- reporting and state
    def _scalars(self) -> dict[str, float]:
        n = len(self.buffer)
        scalars = {"buffer_size": float(n), "warm": float(self.warm), "inserted": float(self.inserted),
                   "rejected": float(self.rejected)}
        if self.recent_replays:
            scalars["replay_fraction"] = float(np.mean(self.recent_replays))
        if n:
            scores = self.buffer.scores[:n]
            scalars.update(mean_score=float(scores.mean()), max_score=float(scores.max()),
                           buffer_solved=float(np.mean(self.buffer.max_returns[:n] > 0)))
        return scalars

    def _plot_levels(self) -> tuple[list[np.ndarray], list[str]]:
        n = len(self.buffer)
        if not n:
            return [], []
        weights = self.replay_weights()
        top = np.argsort(-weights, kind="stable")[:16]
        return ([self.buffer.levels[i] for i in top],
                [f"P={weights[i]:.3f} S={self.buffer.scores[i]:.3f}" for i in top])

    def _state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state(), "inserted": self.inserted, "rejected": self.rejected,
                "recent_replays": torch.tensor(list(self.recent_replays), dtype=torch.bool)}

    def _load(self, state: dict[str, Any]) -> None:
        self.buffer.load(state["buffer"])
        self.inserted, self.rejected = int(state["inserted"]), int(state["rejected"])
        self.recent_replays = deque(state["recent_replays"].tolist(), maxlen=RECENT)
        self.in_flight = {}  # episodes in flight are not resumed
