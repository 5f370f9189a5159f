"""The offline trainer: an agent learns from a dataset of transitions and never steps the env to learn.

``rl-run agent=hilp env=pointmaze dataset=DIR steps=N`` drives agents of kind ``offline`` (HILP, GCBC),
which meet the ``OfflineLearner`` contract (``agents.base``). The env is still built, for its spaces and for
evaluation. The trainer:

* loads ``dataset`` (``envs.datasets.load_dataset``) and checks it against the env (same family, same
  observation and action spaces); a missing ``dataset=``, an unreadable dataset or a mismatch is a
  one-line ``ConfigError`` before anything is written to the run directory;
* hands it to the agent (``agent.set_dataset(dataset, path)``); one unit of work is one
  ``agent.gradient_step()``, so ``steps``, ``log_every``, ``eval.every``, ``checkpoint.every`` and the x axis
  of TensorBoard and scalars.csv count gradient steps;
* logs the agent's metrics and ``updates_per_second``. Checkpoints hold the agent (networks, optimisers,
  sampling RNG), never the dataset, which is reloaded from its path: a resumed run refuses a dataset whose
  size changed since the run started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig

from envs import EnvSpec
from envs.datasets import DatasetError, TransitionDataset, load_dataset
from runners.config import ConfigError
from runners.trainers.base import Trainer, num_envs_for


def load_offline_dataset(cfg: DictConfig, spec: EnvSpec) -> TransitionDataset:
    """``cfg.dataset`` read and checked against ``spec``, or a one-line ConfigError."""
    if cfg.save_dataset:
        raise ConfigError(f"agent {cfg.agent.name} learns offline and collects no transitions; drop save_dataset=true")
    if cfg.curriculum.name != "none":
        raise ConfigError(f"agent {cfg.agent.name} learns offline from a dataset; it takes no curriculum")
    return read_run_dataset(cfg, spec)


def read_run_dataset(cfg: DictConfig, spec: EnvSpec) -> TransitionDataset:
    """The dataset ``dataset=DIR`` names, checked against ``spec``, or a one-line ConfigError."""
    if not cfg.dataset:
        raise ConfigError(f"agent {cfg.agent.name} learns offline: give dataset=DIR (a dataset written by rl-collect "
                          "or rl-run save_dataset=true)")
    try:
        return load_dataset(cfg.dataset, spec)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


class OfflineTrainer(Trainer):
    kind: ClassVar[str] = "offline"
    unit: ClassVar[str] = "update"

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        super().__init__(cfg, spec, device)
        self.make_agent_without_envs(num_envs_for(cfg))
        self.dataset = load_offline_dataset(cfg, spec)
        # absolute: rl-eval may run from elsewhere
        self.agent.set_dataset(self.dataset, str(Path(cfg.dataset).resolve()))
        self.metrics: dict[str, float] = {}

    def check_resume(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint is not None and int(checkpoint.get("dataset_transitions", len(self.dataset))) != len(self.dataset):
            raise ConfigError(f"dataset {self.cfg.dataset} has {len(self.dataset)} transitions, but this run started on "
                              f"{checkpoint['dataset_transitions']}; use another run_dir")

    def advance(self) -> None:
        self.metrics = self.agent.gradient_step()
        self.step += 1

    def log_scalars(self, rate: float) -> dict[str, float]:
        return {**self.metrics, "updates_per_second": rate}

    def state_dict(self) -> dict[str, Any]:
        return {"dataset_transitions": len(self.dataset)}
