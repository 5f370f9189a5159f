"""Loop observers: what watches the online loop without being part of it.

The online trainer (``runners.trainers.online``) steps the vector envs and feeds the agent; everything
else that needs each step or each finished episode plugs in here as an ``Observer``, so adding one (a
regret counter, a video recorder) never edits the loop:

* ``CoverageObserver``: training coverage of ``info["xy"]`` (``train/coverage_*``), checkpointed;
* ``DatasetObserver``: ``save_dataset=true``, every transition to ``run_dir/dataset`` (``envs.datasets``),
  flushed so the dataset holds exactly the episodes finished by each checkpoint;
* ``CurriculumObserver``: a teacher picks every episode's level (``runners.curriculum``); it also owns the
  resets of the envs, checkpoints the teacher and logs ``curriculum/`` scalars and plots.

An observer sees the reset (``begin``), each vector step (``on_step`` with the transition, the env's info
and the episodes that ended), and takes part in logging, evaluation and checkpointing through the hooks
below. Observers with a ``state_key`` are saved in the checkpoint under that key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from agents.base import Transition
from envs.datasets import DatasetWriter
from runners.curriculum import CurriculumDriver
from runners.logger import Logger
from runners.skill_eval import TrainingCoverage

# A finished episode as the episode tracker reports it: (env index, return, length).
Finished = tuple[int, float, int]


class Observer:
    """Do-nothing defaults; an observer overrides the hooks it needs."""

    # The checkpoint entry this observer's state is saved under (None: nothing to save).
    state_key: ClassVar[str | None] = None

    def begin(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        """The envs were reset (a fresh run or a resume)."""

    def on_step(self, step: int, batch: Transition, info: dict[str, Any], finished: list[Finished]) -> None:
        """One vector step was taken; ``step`` counts env steps after it."""

    def on_log(self, logger: Logger, step: int) -> dict[str, float]:
        """Scalars to add to ``train/`` (the observer may log other namespaces itself)."""
        return {}

    def after_eval(self, run_path: Path, step: int) -> None:
        """After a periodic or final evaluation."""

    def before_checkpoint(self, step: int) -> None:
        """A checkpoint of ``step`` is about to be written."""

    def finish(self, step: int) -> None:
        """Training reached its last step."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CoverageObserver(Observer):
    """Cells of ``info["xy"]`` visited in training episodes: all of them and the latest 100 episodes'."""

    state_key = "coverage"

    def __init__(self, num_envs: int, only_x: bool) -> None:
        self.coverage = TrainingCoverage(num_envs, only_x)

    def on_step(self, step: int, batch: Transition, info: dict[str, Any], finished: list[Finished]) -> None:
        ended = np.zeros(len(batch.reward), dtype=bool)
        ended[[i for i, _, _ in finished]] = True
        self.coverage.step(info, ended | info.get("dropped", False))

    def on_log(self, logger: Logger, step: int) -> dict[str, float]:
        return self.coverage.scalars()

    def state_dict(self) -> dict[str, Any]:
        return self.coverage.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coverage.load_state_dict(state)


class DatasetObserver(Observer):
    """Writes every transition of the run as a dataset; the writer gets each step from the trainer's
    ``collect_step`` (it needs the raw step), this observer owns its life cycle."""

    def __init__(self, writer: DatasetWriter) -> None:
        self.writer = writer

    def begin(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.writer.begin(obs, info)

    def before_checkpoint(self, step: int) -> None:
        self.writer.flush(step)

    def finish(self, step: int) -> None:
        self.writer.close(step)


class CurriculumObserver(Observer):
    """A teacher choosing the levels: resets with levels, scores finished episodes, checkpointed."""

    state_key = "curriculum"

    def __init__(self, driver: CurriculumDriver) -> None:
        self.driver = driver

    def reset(self, envs, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset ``envs`` onto teacher levels; later steps queue the next levels on the same envs."""
        self.envs = envs
        return self.driver.reset(envs, seed)

    def on_step(self, step: int, batch: Transition, info: dict[str, Any], finished: list[Finished]) -> None:
        self.driver.on_step(self.envs, info, finished, info.get("dropped"))

    def on_log(self, logger: Logger, step: int) -> dict[str, float]:
        logger.log(self.driver.log_scalars(), step, "curriculum")
        return {}

    def after_eval(self, run_path: Path, step: int) -> None:
        self.driver.plot(run_path, step)

    def state_dict(self) -> dict[str, Any]:
        return self.driver.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.driver.load_state_dict(state)
