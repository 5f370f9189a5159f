"""The students trainer: a teacher that trains its own students on the levels it proposes.

Methods of kind ``students`` (``agents.base.StudentsTeacher``: PAIRED, CLUTR) own several student learners
(protagonist, antagonist). One unit of work is one round, in the order of the PAIRED reference code's
training step:

1. the teacher proposes one level per env (``propose_levels``);
2. every student, in turn, plays that same level batch for ``rollout_steps`` vector steps from a reset
   onto those levels; an env whose episode ends replays its level (it is queued again as the env's
   ``next_level``), so each student finishes zero or more episodes on each level. The student acts,
   observes and learns from its own transitions only (a PPO student updates when its rollout is full, so
   a teacher sets ``rollout_steps`` to its students' rollout length);
3. the teacher learns from the students' per-level returns (``learn_from_round``: regret for PAIRED).

Episodes still running when a student's rollout ends are not scored. ``steps`` counts env steps of all
students together. Evaluation plays the teacher agent's ``act`` (by convention its protagonist).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig

from agents.base import StudentsTeacher, require_contract
from envs import EnvSpec
from runners.config import ConfigError
from runners.rollout import EpisodeTracker, collect, reset_with_levels
from runners.trainers.base import Trainer, num_envs_for


class StudentsTrainer(Trainer):
    kind: ClassVar[str] = "students"
    unit: ClassVar[str] = "step"

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        super().__init__(cfg, spec, device)
        if spec.level_kind() is None:
            raise ConfigError(f"agent {cfg.agent.name} proposes levels; env {spec.describe()} has no levels")
        if cfg.curriculum.name != "none":
            raise ConfigError(f"agent {cfg.agent.name} is its own teacher; drop curriculum={cfg.curriculum.name}")
        self.open_envs(num_envs_for(cfg),
                       check=lambda agent: require_contract(agent, StudentsTeacher, "the students trainer", ConfigError))
        self.metrics: dict[str, float] = {}

    def play_round(self, name: str, student: Any, levels: list[Any], seed: int) -> list[list[float]]:
        """``student`` plays ``levels`` (one per env) for the teacher's rollout length; per level, the
        returns of the episodes it finished there."""
        obs, _ = reset_with_levels(self.envs, seed, levels)
        self.envs.set_attr("next_level", list(levels))
        student.reset_episodes(np.ones(self.num_envs, dtype=bool))
        tracker = EpisodeTracker(self.num_envs)
        returns: list[list[float]] = [[] for _ in levels]
        for _ in range(int(self.agent.rollout_steps)):
            result = collect(student, self.envs, obs, self.spec.provides_final_obs, tracker)
            obs = result.next_obs
            self.metrics.update({f"{name}/{k}": v for k, v in result.metrics.items()})
            finished = tracker.drain()
            for env, ret, _ in finished:
                returns[env].append(ret)
            if finished:
                self.envs.set_attr("next_level", list(levels))
        self.episodes += tracker.total_episodes
        return returns

    @property
    def round_steps(self) -> int:
        """Env steps of one round: every student's rollout on every env."""
        return int(self.agent.rollout_steps) * self.num_envs * len(self.agent.students)

    def advance(self) -> None:
        levels = list(self.agent.propose_levels(self.num_envs))
        if len(levels) != self.num_envs:
            raise ValueError(f"propose_levels({self.num_envs}) returned {len(levels)} levels")
        seed = int(self.cfg.seed) + self.step
        returns = {name: self.play_round(name, student, levels, seed) for name, student in self.agent.students.items()}
        self.step += self.round_steps
        self.metrics.update(self.agent.learn_from_round(levels, returns))

    def log_scalars(self, rate: float) -> dict[str, float]:
        scalars, self.metrics = {**self.metrics, "steps_per_second": rate, "rounds": float(self.step // self.round_steps),
                                 "episodes": float(self.episodes)}, {}
        return scalars

    def close(self) -> None:
        self.envs.close()
