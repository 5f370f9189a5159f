"""The online trainer: an agent acting in vector envs and learning from what it collects.

One unit of work is one vector step (``runner.num_envs`` env steps, the unit of ``steps``): the agent acts,
the envs step, the transition (with the per-step info fields the env spec declares, ``EnvSpec.step_info_keys``,
in ``Transition.extras``) goes to ``agent.observe``, which learns when its schedule says so (every step for
SAC, every full rollout for PPO). Finished episodes are logged as ``train/episode_return`` and
``train/episode_length``. Coverage, dataset recording and curricula watch the loop as observers
(``runners.observers``).

A resumed run starts fresh episodes from a seed that depends on where it resumes (``seed + step``), so
resuming is deterministic but does not replay the first run's episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from envs import EnvSpec
from envs.datasets import DatasetError, DatasetWriter
from runners.config import ConfigError
from runners.curriculum import CurriculumDriver, build_teacher
from runners.logger import Logger
from runners.observers import CoverageObserver, CurriculumObserver, DatasetObserver, Observer
from runners.rollout import EpisodeTracker, collect
from runners.skill_eval import x_only
from runners.trainers.base import Trainer, num_envs_for


class OnlineTrainer(Trainer):
    kind: ClassVar[str] = "online"
    unit: ClassVar[str] = "step"

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        super().__init__(cfg, spec, device)
        self.open_envs(num_envs_for(cfg))
        try:
            self.curriculum = self._curriculum()
        except BaseException:
            self.envs.close()
            raise
        self.extra_keys = tuple(spec.step_info_keys)
        self.tracker = EpisodeTracker(self.num_envs)
        self.observers: list[Observer] = [CoverageObserver(self.num_envs, x_only(spec))]
        if self.curriculum is not None:
            self.observers.append(self.curriculum)
        self.metrics: dict[str, float] = {}
        self.recent_returns: list[float] = []

    def _curriculum(self) -> CurriculumObserver | None:
        teacher = build_teacher(self.cfg, self.spec)
        if teacher is None:
            return None
        return CurriculumObserver(CurriculumDriver(teacher, self.num_envs, student=self.agent))

    # -- the loop -------------------------------------------------------------------------------------

    def start(self, checkpoint: dict[str, Any] | None, logger: Logger) -> None:
        super().start(checkpoint, logger)
        cfg = self.cfg
        self.tracker.total_episodes = self.episodes
        if checkpoint is not None:  # the window of train/recent_return (absent in older checkpoints)
            self.recent_returns = [float(r) for r in checkpoint.get("recent_returns", [])]
        for observer in self.observers:
            if checkpoint is not None and observer.state_key is not None and observer.state_key in checkpoint:
                observer.load_state_dict(checkpoint[observer.state_key])
        self.writer: DatasetWriter | None = None
        if cfg.save_dataset:  # every transition collected goes to run_dir/dataset (envs.datasets)
            metadata = {"agent": cfg.agent.name, "agent_config": OmegaConf.to_container(cfg.agent), "seed": int(cfg.seed),
                        "steps": int(cfg.steps), "num_envs": self.num_envs}
            try:
                self.writer = DatasetWriter(Path(cfg.run_dir) / "dataset", self.spec, self.observation_space,
                                            self.action_space, self.num_envs, metadata,
                                            resume_step=self.step if checkpoint is not None else None)
            except DatasetError as exc:
                raise ConfigError(str(exc)) from None
            self.observers.append(DatasetObserver(self.writer))
        seed = cfg.seed + self.step
        if self.curriculum is not None:
            self.obs, info = self.curriculum.reset(self.envs, seed)
        else:
            self.obs, info = self.envs.reset(seed=seed)
        for observer in self.observers:
            observer.begin(self.obs, info)

    def advance(self) -> None:
        result = collect(self.agent, self.envs, self.obs, self.spec.provides_final_obs, self.tracker, self.writer,
                         self.extra_keys)
        self.obs = result.next_obs
        self.metrics.update(result.metrics)
        self.step += self.num_envs
        self.episodes = self.tracker.total_episodes
        finished = self.tracker.drain()
        for _, ret, length in finished:
            self.recent_returns = (self.recent_returns + [ret])[-20:]
            self.logger.log({"episode_return": ret, "episode_length": length}, self.step, "train")
        for observer in self.observers:
            observer.on_step(self.step, result.batch, result.info, finished)

    def log_scalars(self, rate: float) -> dict[str, float]:
        scalars = {**self.metrics, "steps_per_second": rate, "episodes": self.tracker.total_episodes,
                   "dropped_episodes": self.tracker.dropped_episodes}
        for observer in self.observers:
            scalars.update(observer.on_log(self.logger, self.step))
        if self.recent_returns:
            scalars["recent_return"] = float(np.mean(self.recent_returns))
        self.metrics = {}
        return scalars

    def progress_note(self) -> str:
        return f"ret={np.mean(self.recent_returns):.1f}" if self.recent_returns else ""

    # -- shell hooks ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"recent_returns": list(self.recent_returns),
                **{o.state_key: o.state_dict() for o in self.observers if o.state_key is not None}}

    def before_checkpoint(self) -> None:
        for observer in self.observers:
            observer.before_checkpoint(self.step)

    def after_eval(self, run_path: Path) -> None:
        for observer in self.observers:
            observer.after_eval(run_path, self.step)

    def finish(self) -> None:
        for observer in self.observers:
            observer.finish(self.step)

    def close(self) -> None:
        self.envs.close()
