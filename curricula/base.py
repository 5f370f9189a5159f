"""The teacher contract shared by every curriculum.

Every teacher (``LevelTeacher``) proposes levels and learns from the scores the student obtained on them:
``sample(n)``, ``update(levels, scores)``, ``state_dict``/``load_state_dict``, ``log_scalars``, ``plot``.
Teachers differ in the *kind* of level they produce (``level_kind``), and an env family declares the kind
it plays (``EnvSpec.level_kind()``, see ``runners.curriculum.build_teacher``):

* ``box``: a continuous parameter vector inside a box ``[low, high]`` (``BoxTeacher`` below: Random,
  ALP-GMM, Covar-GMM, RIAC on BipedalWalker and the toy testbed); scores are episodic returns;
* ``maze``: an encoded maze layout (``curricula.maze_teacher.MazeTeacher``: DR, PLR, DRED); scores are
  computed by the runner from the student's rollouts (value losses), see ``LevelTeacher.score_kind``.

``LevelTeacher`` is the frame both kinds share: the config check, the seeded generator, sampling
(``sample_for_training(n)``: levels and, per level, whether the student learns from its episode; robust
PLR and DRED evaluate new levels first) and the state-dict frame (name, seed, generator). A kind's base
adds what its levels need (the box and competences; the maze counters), and a method fills in
``_propose`` (through its kind's hook), ``update`` and its own ``_state``/``_load``.

Box teachers:

    teacher = ALPGMM(ALPGMMConfig(), low=[0, 0], high=[3, 6], seed=0)
    levels = teacher.sample(n)             # list of n parameter vectors, each inside the box
    ...                                     # the runner plays them: env.reset(options={"level": level})
    teacher.update(levels, scores)          # episodic returns (or competences) of those levels

Teachers never see the student, only these scores. They process the pairs of ``update`` one episode
after the other, in order, exactly as the reference code (teachDeepRL) alternates one ``sample_task``
with one ``update``; levels of one ``sample(n)`` batch are all drawn from the same teacher state.

Scores. The teachers of teachDeepRL reason on a *competence* in [0, 1]: its controller rescales the
episodic return with bounds given by the environment (BipedalWalker: ``interp(R, [-150, 350], [0, 1])``,
values outside clipped). ``score_low``/``score_high`` in the config do the same here; left unset, the
scores are taken as competences already (the toy testbed returns competence / 100).

State. ``state_dict`` holds only tensors, numbers, strings and containers of them (histories as float64
tensors, Gaussian mixtures as their weights/means/covariances, the generator state), so it survives
``torch.save`` / ``torch.load(weights_only=True)``; a teacher rebuilt from it samples exactly as the
original would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

# A level reported back may leave the box by a float32 round trip in the env; beyond this share of the
# box's range (of 1 for narrow boxes) it is a caller's mistake.
_BOUND_TOLERANCE = 1e-5


@dataclass
class LevelTeacherConfig:
    """Base of every teacher config: its fields are the ``curriculum.*`` overrides. ``name`` is the registry
    name (``curriculum=NAME``)."""

    name: str = "?"

    def validate(self) -> None:
        """Raise ValueError (one line) for a bad field value."""

    def score_kind(self) -> str:
        """Which score the teacher learns from (a key of ``SCORE_KINDS``); configs with a ``score`` field
        return it."""
        return "return"

    def fit_to_run(self, steps: int) -> None:
        """Fill defaults that depend on the run's length in env steps (schedules over "the run")."""


@dataclass
class BoxTeacherConfig(LevelTeacherConfig):
    """Base of the box teachers' configs."""

    # Episodic returns are mapped linearly from [score_low, score_high] to a competence in [0, 1]
    # (clipped), as teachDeepRL's controller does; None = scores are competences already.
    score_low: float | None = None
    score_high: float | None = None

    def validate(self) -> None:
        """Raise ValueError (one line) for a bad field value."""
        if (self.score_low is None) != (self.score_high is None):
            raise ValueError("score_low and score_high must be given together (or both left unset)")
        if self.score_low is not None and not self.score_low < self.score_high:
            raise ValueError(f"score_low must be < score_high, got {self.score_low} and {self.score_high}")


def check_bounds(low: Any, high: Any) -> tuple[np.ndarray, np.ndarray]:
    """The parameter box as two float64 vectors, or a one-line ValueError saying what is wrong."""
    try:
        low_arr = np.asarray(low, dtype=np.float64)
        high_arr = np.asarray(high, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"teacher bounds must be numeric vectors, got low={low!r} high={high!r}") from None
    if low_arr.ndim != 1 or high_arr.ndim != 1 or low_arr.size == 0:
        raise ValueError(
            f"teacher bounds must be non-empty 1-D vectors, got shapes {low_arr.shape} and {high_arr.shape}"
        )
    if low_arr.size != high_arr.size:
        raise ValueError(f"teacher bounds differ in length: low has {low_arr.size}, high has {high_arr.size}")
    if not (np.isfinite(low_arr).all() and np.isfinite(high_arr).all()):
        raise ValueError(
            f"teacher bounds must be finite, got low={low_arr.tolist()} high={high_arr.tolist()}"
        )
    inverted = np.flatnonzero(low_arr > high_arr)
    if inverted.size:
        raise ValueError(
            f"teacher bounds have low > high in dimension(s) {inverted.tolist()}: "
            f"low={low_arr.tolist()} high={high_arr.tolist()}"
        )
    return low_arr, high_arr


def proportional_choice(values: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to ``values`` (>= 0); uniform when they sum to 0."""
    total = float(np.sum(values))
    if total <= 0.0:
        return int(rng.integers(len(values)))
    return int(rng.choice(len(values), p=np.asarray(values, dtype=np.float64) / total))


def to_tensor(array: Any) -> torch.Tensor:
    """A float64 tensor copy of an array-like (checkpoints hold tensors, never NumPy arrays)."""
    return torch.from_numpy(np.array(array, dtype=np.float64))


def to_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


# Scores a teacher may ask for (``LevelTeacher.score_kind``); the runner computes all but ``return`` from
# the student's published rollout statistics (per-step GAE advantages A_t and values V_t of the episode):
SCORE_KINDS = {
    "return": "the episodic return",
    "pvl": "positive value loss, mean_t max(A_t, 0)",
    "l1vl": "L1 value loss, mean_t |A_t|",
    # mean_t (R - V_t) with R the episode's own return; a teacher that remembers the best return R_max of
    # the level turns it into MaxMC = mean_t (R_max - V_t) by adding R_max - R.
    "maxmc": "MaxMC, mean_t (best return on the level - V_t)",
}


class LevelTeacher:
    """The frame every teacher shares, whatever its kind of level: config check, seeded generator, sampling
    and the state-dict frame (module docstring)."""

    level_kind: ClassVar[str] = "?"  # "box" | "maze": what ``sample`` returns and ``update`` accepts
    config_class: ClassVar[type[LevelTeacherConfig]] = LevelTeacherConfig

    def __init__(self, cfg: LevelTeacherConfig, seed: int) -> None:
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(cfg).__name__}")
        cfg.validate()
        if cfg.score_kind() not in SCORE_KINDS:
            raise ValueError(f"unknown score {cfg.score_kind()!r}; choose one of: {', '.join(SCORE_KINDS)}")
        self.cfg = cfg
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)

    @property
    def score_kind(self) -> str:
        """Which score ``update`` expects (a key of ``SCORE_KINDS``): the config's."""
        return self.cfg.score_kind()

    # ----------------------------------------------------------------- the contract
    def sample(self, n: int) -> list[Any]:
        """``n`` levels, all drawn from the current teacher state."""
        return self.sample_for_training(n)[0]

    def sample_for_training(self, n: int) -> tuple[list[Any], np.ndarray]:
        """``n`` levels and, per level, whether the student may learn from its episode (False: the episode
        only scores the level, e.g. robust PLR's new levels)."""
        if n < 0:
            raise ValueError(f"cannot sample a negative number of levels ({n})")
        levels, learn = [], np.ones(n, dtype=bool)
        for k in range(n):
            level, learn[k] = self._propose()
            levels.append(level)
        return levels, learn

    def update(self, levels: Sequence[Any], scores: Sequence[float], returns: Sequence[float] | None = None,
               lengths: Sequence[int] | None = None) -> None:
        """Learn from the scores (of ``score_kind``) the student obtained on ``levels``; ``returns`` and
        ``lengths`` are the episodes' returns and numbers of steps, for teachers that need them."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.cfg.name, "seed": self.seed, "rng": self.rng.bit_generator.state,
                **self._kind_state(), **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["name"] != self.cfg.name:
            raise ValueError(f"state of teacher {state['name']!r} cannot be loaded into {self.cfg.name!r}")
        self._load_kind_state(state)
        self.seed = int(state["seed"])
        self.rng.bit_generator.state = state["rng"]
        self._load(state)

    def log_scalars(self) -> dict[str, float]:
        """Scalars worth a curve in TensorBoard (the runner prefixes them)."""
        return {}

    def plot(self, path: str | Path) -> None:
        """Write a PNG of what the teacher currently samples."""
        raise NotImplementedError

    # ----------------------------------------------------------------- what a kind's base implements
    def _propose(self) -> tuple[Any, bool]:
        """The next level and whether the student learns from its episode."""
        raise NotImplementedError

    def _kind_state(self) -> dict[str, Any]:
        return {}

    def _load_kind_state(self, state: dict[str, Any]) -> None:
        """Restore (and check) what ``_kind_state`` saved; called before the generator is restored."""

    # ----------------------------------------------------------------- what a method implements
    def _state(self) -> dict[str, Any]:
        return {}

    def _load(self, state: dict[str, Any]) -> None:
        pass


class BoxTeacher(LevelTeacher):
    """Teachers of box levels: bounds, competences and input checks; subclasses hold the method
    (``_sample_one``, ``_observe``, ``plot``)."""

    level_kind: ClassVar[str] = "box"
    config_class: ClassVar[type[BoxTeacherConfig]] = BoxTeacherConfig
    cfg: BoxTeacherConfig

    def __init__(self, cfg: BoxTeacherConfig, low: Any, high: Any, seed: int) -> None:
        super().__init__(cfg, seed)
        self.low, self.high = check_bounds(low, high)
        self.ndims = self.low.size

    # ----------------------------------------------------------------- the contract
    def _propose(self) -> tuple[np.ndarray, bool]:
        """A level (a float64 vector inside the bounds); the student learns from every episode."""
        return self._sample_one(), True

    def update(self, levels: Sequence[Any], scores: Sequence[float], returns: Sequence[float] | None = None,
               lengths: Sequence[int] | None = None) -> None:
        """Learn from the scores (episodic returns) the student obtained on ``levels``, processed one
        episode at a time; ``returns`` and ``lengths`` are not used by box teachers."""
        levels_arr = self._check_levels(levels)
        scores_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores_arr.size != len(levels_arr):
            raise ValueError(f"update got {len(levels_arr)} levels but {scores_arr.size} scores")
        if not np.isfinite(scores_arr).all():
            raise ValueError(f"update got non-finite scores: {scores_arr.tolist()}")
        for level, competence in zip(levels_arr, self._competence(scores_arr)):
            self._observe(level, float(competence))

    def _kind_state(self) -> dict[str, Any]:
        return {"low": to_tensor(self.low), "high": to_tensor(self.high)}

    def _load_kind_state(self, state: dict[str, Any]) -> None:
        low, high = to_array(state["low"]), to_array(state["high"])
        if not (np.array_equal(low, self.low) and np.array_equal(high, self.high)):
            raise ValueError(
                f"state was saved for bounds low={low.tolist()} high={high.tolist()}, "
                f"this teacher has low={self.low.tolist()} high={self.high.tolist()}"
            )

    def plot(self, path: str | Path) -> None:
        """Write a PNG of the current sampling distribution (first two parameter dimensions)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- what subclasses implement
    def _sample_one(self) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, level: np.ndarray, competence: float) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers
    def _uniform(self) -> np.ndarray:
        return self.rng.uniform(self.low, self.high)

    def _competence(self, scores: np.ndarray) -> np.ndarray:
        if self.cfg.score_low is None:
            return scores
        return np.interp(scores, (self.cfg.score_low, self.cfg.score_high), (0.0, 1.0))

    def _check_levels(self, levels: Sequence[Any]) -> np.ndarray:
        try:
            arr = np.asarray(list(levels), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"update needs levels that are vectors of {self.ndims} numbers") from None
        if arr.size == 0:
            return arr.reshape(0, self.ndims)
        if arr.ndim != 2 or arr.shape[1] != self.ndims:
            raise ValueError(
                f"update needs levels of {self.ndims} parameters, got an array of shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError("update got a level with non-finite parameters")
        slack = _BOUND_TOLERANCE * np.maximum(self.high - self.low, 1.0)
        outside = ((arr < self.low - slack) | (arr > self.high + slack)).any(axis=1)
        if outside.any():
            row = arr[outside][0]
            raise ValueError(
                f"update got level {row.tolist()} outside the bounds low={self.low.tolist()} high={self.high.tolist()}"
            )
        return np.clip(arr, self.low, self.high)


# The names the box teachers had before the maze teachers joined them.
Teacher = BoxTeacher
TeacherConfig = BoxTeacherConfig
