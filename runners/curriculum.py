"""The runner side of curricula: a teacher picks the level of every episode the student plays.

The teacher never sees the student: it gets (level played, episodic return) pairs and answers with
levels. Levels reach the envs through the Levels convention of the design (``envs.base``): the first
episodes through ``reset(options={"level": ...})`` per env, later ones, which start inside the vector
env's autoreset, through each env's ``next_level`` attribute, set one episode ahead. The level an
episode really played is read back from its final ``info["level"]``, so the teacher is updated with
what was played even if an env fell back to its own default (e.g. after a rollout worker restart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents import Agent
from curricula import TEACHERS, Teacher, make_teacher
from envs import EnvSpec
from runners.config import ConfigError
from runners.rollout import reset_with_levels


def build_teacher(cfg: DictConfig, spec: EnvSpec) -> Teacher | None:
    """The configured teacher over the env's level box, or None for ``curriculum=none``."""
    if cfg.curriculum.name == "none":
        return None
    bounds = spec.level_bounds()
    if bounds is None:
        raise ConfigError(
            f"curriculum={cfg.curriculum.name} needs a level-parameterised env; env {spec.describe()} has no levels"
        )
    teacher_cfg = OmegaConf.to_object(cfg.curriculum)
    if teacher_cfg.score_low is None and spec.score_range() is not None:
        teacher_cfg.score_low, teacher_cfg.score_high = spec.score_range()
    try:
        teacher_cfg.validate()
        return make_teacher(teacher_cfg, bounds[0], bounds[1], seed=int(cfg.seed))
    except ValueError as exc:
        raise ConfigError(f"curriculum {cfg.curriculum.name}: {exc}") from None


class CurriculumDriver:
    """Keeps one pending level per env and feeds finished episodes back to the teacher."""

    def __init__(self, teacher: Teacher, num_envs: int, student: Agent | None = None) -> None:
        self.teacher = teacher
        # The student is only read for the scores it publishes (e.g. PPO's ``last_rollout_stats``);
        # the teacher itself never sees it.
        self.student = student
        self.num_envs = num_envs
        self.pending: list[np.ndarray] = []
        self.episodes = 0

    def reset(self, envs, seed: int):
        """First episodes on teacher levels, and the next level of every env queued."""
        obs, info = reset_with_levels(envs, seed, self.teacher.sample(self.num_envs))
        self.pending = self.teacher.sample(self.num_envs)
        envs.set_attr("next_level", list(self.pending))
        return obs, info

    def on_step(self, envs, info: dict[str, Any], finished: list[tuple[int, float]],
                dropped: np.ndarray | None) -> None:
        """``finished``: (env index, return) of episodes that ended this step."""
        if not finished and (dropped is None or not dropped.any()):
            return
        final_info = info.get("final_info", {})
        levels, scores = [], []
        for i, ret in finished:
            if "level" in final_info and final_info.get("_level", np.ones(self.num_envs, bool))[i]:
                levels.append(np.asarray(final_info["level"][i], dtype=np.float64))
                scores.append(ret)
        if levels:
            self.teacher.update(levels, scores)
            self.episodes += len(levels)
        # Every env whose queued level was just consumed (an episode ended, or its worker was replaced
        # and lost the queue) gets a fresh one; the whole list is re-sent because set_attr is per vector.
        refresh = [i for i, _ in finished]
        if dropped is not None:
            refresh += [int(i) for i in np.flatnonzero(dropped)]
        for i, level in zip(refresh, self.teacher.sample(len(refresh))):
            self.pending[i] = level
        envs.set_attr("next_level", list(self.pending))

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict(), "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.episodes = int(state["episodes"])

    def log_scalars(self) -> dict[str, float]:
        return {**self.teacher.log_scalars(), "teacher_episodes": self.episodes}

    def plot(self, run_dir: Path, step: int) -> Path:
        folder = Path(run_dir) / "curriculum"
        folder.mkdir(exist_ok=True)
        path = folder / f"levels_step{step:010d}.png"
        self.teacher.plot(path)
        return path


__all__ = ["TEACHERS", "CurriculumDriver", "build_teacher"]
