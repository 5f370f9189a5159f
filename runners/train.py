"""``train``: one experiment, from its config to a trained, evaluated and checkpointed agent.

The method's declared kind (``Agent.kind``) picks its trainer (``runners.trainers``), and the run shell
(``runners.shell``) drives it: run directory, resume, logs, the log/eval/checkpoint schedule, Ctrl-C, hooks
and the final evaluation are the same for every kind. Agents only see transitions (or datasets, or episode
results), so the same agent trains on a local vector env or on remote Ray workers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from agents import AGENTS
from envs import EnvSpec
from runners.checkpoint import seed_everything
from runners.config import ConfigError
from runners.rundir import default_run_dir, prepare_run_dir
from runners.shell import (
    CHECKPOINT_VERSION,
    RunShell,
    TrainHooks,
    TrainResult,
    eval_suites_for,
    read_checkpoint,
    space_signature,
)
from runners.trainers import TRAINERS, build_agent, num_envs_for

__all__ = ["CHECKPOINT_VERSION", "TrainHooks", "TrainResult", "build_agent", "eval_suites_for", "num_envs_for",
           "resolve_device", "space_signature", "train"]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is available (torch.cuda.is_available() is False); use device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def trainer_kind(cfg: DictConfig) -> str:
    """The kind of training the configured method declares (``Agent.kind``)."""
    kind = AGENTS[cfg.agent.name][1].kind
    if kind not in TRAINERS:
        raise ConfigError(f"agent {cfg.agent.name} is of kind {kind!r}, which no trainer drives; "
                          f"known kinds: {', '.join(TRAINERS)}")
    return kind


def train(cfg: DictConfig, overrides: list[str] | None = None, hooks: TrainHooks | None = None) -> TrainResult:
    """Run (or resume) the experiment described by ``cfg``; returns where it went and how far."""
    spec: EnvSpec = OmegaConf.to_object(cfg.env)
    device = resolve_device(cfg.device)
    trainer_cls = TRAINERS[trainer_kind(cfg)]
    run_path = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg, spec.describe())
    run = prepare_run_dir(cfg, run_path)
    checkpoint = read_checkpoint(run.resume_from, device)
    cfg.run_dir = str(run.path)

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    trainer = trainer_cls(cfg, spec, device)
    try:
        return RunShell(cfg, run, spec, trainer, hooks or TrainHooks(), checkpoint).run_training(overrides or [])
    finally:
        trainer.close()
