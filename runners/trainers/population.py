"""The population trainer: a method proposes policies and learns from their whole episodes only.

Methods of kind ``population`` (``agents.base.PopulationMethod``: quality-diversity search, novelty
search, evolution strategies) never see a transition. One unit of work is one generation:

1. ``genomes = method.ask()``;
2. one episode per genome, all played in lockstep by ``runners.episodes.play_episodes`` with the method's
   batched ``genome_policy(genomes)`` (row ``k`` plays genome ``k``), locally, or with ``runner.backend=ray``
   in chunks on Ray workers (``runner.num_workers`` tasks; one Ray session held for the whole run), so a
   population of hundreds spreads over a cluster without a code change; the method says which per-step
   info fields (``episode_info_keys``) and frames (``episode_render``) it needs (behaviour descriptors, the
   final frame of TAXONS' autoencoder);
3. ``method.tell(genomes, episodes)`` with the results in the order of the genomes.

``steps`` counts evaluated episodes (the unit the QD literature budgets in); ``train/env_steps`` the env
steps they took. Episode ``k`` of the generation that starts after ``e`` episodes is seeded ``seed + e + k``,
so results are the same on every back-end and a resumed run continues the seed sequence.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig

from agents.base import PopulationMethod, require_contract
from envs import EnvSpec
from runners.config import ConfigError
from runners.episodes import play_episodes
from runners.logger import Logger
from runners.trainers.base import Trainer


class PopulationTrainer(Trainer):
    kind: ClassVar[str] = "population"
    unit: ClassVar[str] = "episode"

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        super().__init__(cfg, spec, device)
        if cfg.curriculum.name != "none":
            raise ConfigError(f"agent {cfg.agent.name} evaluates whole episodes; it takes no curriculum")
        if cfg.save_dataset:
            raise ConfigError(f"agent {cfg.agent.name} evaluates whole episodes; save_dataset=true is not supported")
        self.make_agent_without_envs(
            1, check=lambda agent: require_contract(agent, PopulationMethod, "the population trainer", ConfigError))
        self.backend = "ray" if cfg.runner.backend == "ray" else "sync"
        self.metrics: dict[str, float] = {}
        self.env_steps = 0
        self.best_return = -np.inf
        self._ray = contextlib.ExitStack()

    def start(self, checkpoint: dict[str, Any] | None, logger: Logger) -> None:
        super().start(checkpoint, logger)
        if checkpoint is not None:
            self.env_steps = int(checkpoint.get("env_steps", 0))
        if self.backend == "ray":
            from runners.ray_rollout import ray_session

            self._ray.enter_context(ray_session(self.cfg.ray.address, self.cfg.ray.num_cpus))

    def advance(self) -> None:
        cfg, method = self.cfg, self.agent
        genomes = list(method.ask())
        if not genomes:
            raise ValueError(f"agent {cfg.agent.name}: ask() proposed no genomes")
        episodes = play_episodes(method.genome_policy(genomes), self.spec, seeds=[int(cfg.seed) + self.step + k
                                                                                  for k in range(len(genomes))],
                                 backend=self.backend, info_keys=method.episode_info_keys, render=method.episode_render,
                                 num_workers=int(cfg.runner.num_workers), ray_address=cfg.ray.address,
                                 ray_num_cpus=cfg.ray.num_cpus)
        self.step += len(genomes)
        self.episodes += len(genomes)
        self.env_steps += int(episodes.lengths.sum())
        self.best_return = max(self.best_return, float(episodes.returns.max()))
        self.metrics = {"return_mean": float(episodes.returns.mean()), "return_max": float(episodes.returns.max()),
                        **method.tell(genomes, episodes)}

    def log_scalars(self, rate: float) -> dict[str, float]:
        return {**self.metrics, "episodes_per_second": rate, "env_steps": float(self.env_steps)}

    def progress_note(self) -> str:
        return f"best={self.best_return:.1f}" if np.isfinite(self.best_return) else ""

    def state_dict(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps}

    def close(self) -> None:
        self._ray.close()
