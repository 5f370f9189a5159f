"""What every maze teacher (DR, PLR, DRED) shares: levels as maze encodings, checks, counters, state, plots.

Levels are the maze env's encodings (``envs.maze.encode``: an int64 vector of the 13x13 cell codes, then
the agent's x, y and direction and the goal's x, y); the runner plays them with
``reset(options={"level": encoding})`` and reads the played one back from ``info["level"]``. A teacher
draws new levels from a *generator* ``generator(rng) -> encoding``, by default the env's domain
randomisation (``envs.maze.random_level``); tests pass their own.

``MazeTeacher`` is the maze kind of the teacher frame (``curricula.base.LevelTeacher``, which the box
teachers share). Subclasses implement ``_next_level() -> (level, learn)`` (``learn`` False: the student only
plays the episode to score the level) and ``_observe(level, score, ret)``, plus their state and plots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from curricula.base import LevelTeacher, LevelTeacherConfig
from envs.maze import decode, encode, random_level

RECENT = 200  # episodes behind the logged solve rate and mean return
# Tile colours of the plots, by cell code (EMPTY, WALL, LAVA, MOSS).
TILE_COLOURS = np.array([[1.0, 1.0, 1.0], [0.35, 0.35, 0.35], [0.95, 0.45, 0.1], [0.55, 0.8, 0.45]])

Generator = Callable[[np.random.Generator], np.ndarray]


def random_maze(rng: np.random.Generator) -> np.ndarray:
    """A level of the maze env's own distribution (domain randomisation), encoded."""
    return np.asarray(encode(random_level(rng)), dtype=np.int64)


def stack_levels(levels: Sequence[np.ndarray]) -> torch.Tensor:
    """Levels as one int64 tensor [n, length] for a state dict ([0, 0] when there are none)."""
    if not len(levels):
        return torch.zeros((0, 0), dtype=torch.int64)
    return torch.from_numpy(np.stack([np.asarray(level, dtype=np.int64) for level in levels]))


def check_level(level: Any) -> np.ndarray:
    """``level`` as an int64 vector, or a one-line ValueError."""
    try:
        arr = np.asarray(level)
    except (TypeError, ValueError):
        raise ValueError(f"a maze level is an integer vector (the maze encoding), got {level!r}") from None
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and
                                                                            not np.array_equal(arr, np.round(arr))):
        raise ValueError(f"a maze level is an integer vector (the maze encoding), got an array of shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    return arr.astype(np.int64)


class MazeTeacher(LevelTeacher):
    """Base of the maze teachers: level generator, update checks, counters and their state."""

    level_kind: ClassVar[str] = "maze"
    config_class: ClassVar[type[LevelTeacherConfig]] = LevelTeacherConfig

    def __init__(self, cfg: LevelTeacherConfig, seed: int, generator: Generator | None = None) -> None:
        super().__init__(cfg, seed)
        self.generator = generator or random_maze
        self.samples = 0  # levels handed out so far: PLR's clock c for staleness
        self.episodes = 0  # episodes reported
        self.env_steps = 0  # their steps, summed (schedules over the run)
        self.recent_returns: deque[float] = deque(maxlen=RECENT)

    # ----------------------------------------------------------------- the contract
    def _propose(self) -> tuple[np.ndarray, bool]:
        level, learn = self._next_level()
        self.samples += 1
        return level, learn

    def update(self, levels: Sequence[Any], scores: Sequence[float], returns: Sequence[float] | None = None,
               lengths: Sequence[int] | None = None) -> None:
        checked = [check_level(level) for level in levels]
        scores_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores_arr.size != len(checked):
            raise ValueError(f"update got {len(checked)} levels but {scores_arr.size} scores")
        if returns is None:
            if self.score_kind != "return":
                raise ValueError(f"teacher {self.cfg.name} scores by {self.score_kind} and needs the episodes' returns")
            returns = scores_arr
        returns_arr = np.asarray(returns, dtype=np.float64).reshape(-1)
        lengths_arr = np.zeros(len(checked), np.int64) if lengths is None else np.asarray(lengths, np.int64).reshape(-1)
        if returns_arr.size != len(checked) or lengths_arr.size != len(checked):
            raise ValueError(f"update got {len(checked)} levels but {returns_arr.size} returns and {lengths_arr.size} lengths")
        if not (np.isfinite(scores_arr).all() and np.isfinite(returns_arr).all()):
            raise ValueError(f"update got non-finite scores or returns: {scores_arr.tolist()} {returns_arr.tolist()}")
        for level, score, ret, length in zip(checked, scores_arr, returns_arr, lengths_arr):
            self.episodes += 1
            self.env_steps += int(length)
            self.recent_returns.append(float(ret))
            self._observe(level, float(score), float(ret))

    def _kind_state(self) -> dict[str, Any]:
        return {"samples": self.samples, "episodes": self.episodes, "env_steps": self.env_steps,
                "recent_returns": torch.tensor(list(self.recent_returns), dtype=torch.float64)}

    def _load_kind_state(self, state: dict[str, Any]) -> None:
        self.samples, self.episodes = int(state["samples"]), int(state["episodes"])
        self.env_steps = int(state["env_steps"])
        self.recent_returns = deque(state["recent_returns"].tolist(), maxlen=RECENT)

    def log_scalars(self) -> dict[str, float]:
        scalars = {"episodes": float(self.episodes)}
        if self.recent_returns:
            returns = np.array(self.recent_returns)
            scalars["mean_return"] = float(returns.mean())
            scalars["solve_rate"] = float(np.mean(returns > 0))  # the maze papers' "solved": return > 0
        return {**scalars, **self._scalars()}

    def plot(self, path: str | Path) -> None:
        """A grid of up to 16 levels the teacher holds or just proposed (``_plot_levels``), with captions."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        levels, captions = self._plot_levels()
        levels, captions = levels[:16], captions[:16]
        cols = max(1, min(4, len(levels)))
        rows = max(1, -(-len(levels) // cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, level, caption in zip(axes.flat, levels, captions):
            maze = decode(level)
            cells = np.asarray(maze.cells)
            ax.imshow(TILE_COLOURS[np.clip(cells, 0, len(TILE_COLOURS) - 1)], interpolation="nearest")
            ax.plot(*maze.goal_pos, "s", color="tab:green", markersize=7)
            ax.plot(*maze.agent_pos, marker=(3, 0, -90 * int(maze.agent_dir) - 90), color="tab:red", markersize=8)
            ax.set_title(caption, fontsize=7)
        if not levels:
            axes.flat[0].text(0.5, 0.5, "no levels yet", ha="center", va="center")
        fig.suptitle(f"{self.cfg.name} after {self.episodes} episodes", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)

    # ----------------------------------------------------------------- what subclasses implement
    def _next_level(self) -> tuple[np.ndarray, bool]:
        raise NotImplementedError

    def _observe(self, level: np.ndarray, score: float, ret: float) -> None:
        raise NotImplementedError

    def _scalars(self) -> dict[str, float]:
        return {}

    def _plot_levels(self) -> tuple[list[np.ndarray], list[str]]:
        return [], []
