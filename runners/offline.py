"""The offline training loop: an agent learns from a dataset of transitions and never steps the env to learn.

``rl-run agent=hilp env=pointmaze dataset=DIR steps=N`` lands here from ``runners.train.train`` when the
agent class says ``offline = True``. The env is still built, for its spaces and for evaluation. The loop:

* loads ``dataset`` (``envs.datasets.load_dataset``) and checks it against the env (same family, same
  observation and action spaces); a missing ``dataset=``, an unreadable dataset or a mismatch is a
  one-line ``ConfigError`` before anything is written to the run directory;
* hands it to the agent (``agent.set_dataset(dataset, path)``), then runs ``steps`` gradient steps
  (``agent.gradient_step()``): for an offline run ``steps``, ``log_every``, ``eval.every`` and
  ``checkpoint.every`` count gradient steps, and so does the x axis of TensorBoard and scalars.csv;
* logs ``train/`` scalars (the agent's metrics, ``updates_per_second``), evaluates with the agent's suites
  (``runners.evaluation``, the same ``eval/`` tags as online runs) and writes atomic checkpoints through
  the same ``TrainHooks`` callbacks as the online loop; rerunning the command resumes from the newest
  checkpoint. Checkpoints hold the agent (networks, optimisers, sampling RNG), never the dataset, which is
  reloaded from its path: a resumed run refuses a dataset whose size changed since the run started.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from agents import Agent
from envs import EnvSpec
from envs.datasets import DatasetError, TransitionDataset, load_dataset
from runners.checkpoint import rng_state, save_checkpoint, set_rng_state
from runners.config import ConfigError
from runners.logger import Logger
from runners.rundir import RunDir, write_config
from runners.train import CHECKPOINT_VERSION, TrainHooks, TrainResult, _evaluate, space_signature


def load_offline_dataset(cfg: DictConfig, spec: EnvSpec) -> TransitionDataset:
    """``cfg.dataset`` read and checked against ``spec``, or a one-line ConfigError."""
    if cfg.save_dataset:
        raise ConfigError(f"agent {cfg.agent.name} learns offline and collects no transitions; drop save_dataset=true")
    if cfg.curriculum.name != "none":
        raise ConfigError(f"agent {cfg.agent.name} learns offline from a dataset; it takes no curriculum")
    if not cfg.dataset:
        raise ConfigError(f"agent {cfg.agent.name} learns offline: give dataset=DIR (a dataset written by rl-collect "
                          "or rl-run save_dataset=true)")
    try:
        return load_dataset(cfg.dataset, spec)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


def train_offline(cfg: DictConfig, run: RunDir, spec: EnvSpec, agent: Agent, observation_space, action_space,
                  checkpoint: dict[str, Any] | None, overrides: list[str], hooks: TrainHooks) -> TrainResult:
    """Load the dataset, then run (or resume) ``cfg.steps`` gradient steps of ``agent``."""
    dataset = load_offline_dataset(cfg, spec)
    if checkpoint is not None and int(checkpoint.get("dataset_transitions", len(dataset))) != len(dataset):
        raise ConfigError(f"dataset {cfg.dataset} has {len(dataset)} transitions, but this run started on "
                          f"{checkpoint['dataset_transitions']}; use another run_dir")
    agent.set_dataset(dataset, str(Path(cfg.dataset).resolve()))  # absolute: rl-eval may run from elsewhere
    write_config(run, cfg, overrides)

    step = 0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        set_rng_state(checkpoint["rng"])
        step = int(checkpoint["step"])
    logger = Logger(run.path, start_step=step)
    if step == 0:
        logger.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")

    def schedule(every: int) -> int:
        return (step // every + 1) * every if every > 0 else cfg.steps + 1

    next_log, next_eval, next_ckpt = schedule(cfg.log_every), schedule(cfg.eval.every), schedule(cfg.checkpoint.every)
    show_progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=cfg.steps, initial=step, unit="update", disable=not show_progress, dynamic_ncols=True)
    last_eval: dict[str, Any] | None = None
    metrics: dict[str, float] = {}
    t0, steps_at_t0 = time.perf_counter(), step

    def save() -> None:
        logger.flush()  # everything logged up to this step survives a crash after the checkpoint
        state = {
            "version": CHECKPOINT_VERSION,
            "agent": agent.state_dict(),
            "rng": rng_state(),
            "step": step,
            "episodes": 0,
            "spaces": space_signature(observation_space, action_space),
            "dataset_transitions": len(dataset),
        }
        hooks.on_checkpoint(step, save_checkpoint(run.path, step, state, keep=cfg.checkpoint.keep))

    try:
        while step < cfg.steps:
            metrics = agent.gradient_step()
            step += 1
            bar.update(1)
            if step >= next_log:
                rate = (step - steps_at_t0) / max(time.perf_counter() - t0, 1e-9)
                scalars = {**metrics, "updates_per_second": rate}
                logger.log(scalars, step, "train")
                hooks.on_log(step, scalars)
                next_log = schedule(cfg.log_every)
            if step >= next_eval:
                last_eval = _evaluate(cfg, agent, spec, logger, step)
                hooks.on_eval(step, last_eval["results"])
                next_eval = schedule(cfg.eval.every)
            if step >= next_ckpt:
                save()
                next_ckpt = schedule(cfg.checkpoint.every)
        if last_eval is None or last_eval["step"] != step:
            last_eval = _evaluate(cfg, agent, spec, logger, step)
            hooks.on_eval(step, last_eval["results"])
        save()
    except KeyboardInterrupt:
        save()  # keep what was learnt; the same command resumes from here
        raise
    finally:
        bar.close()
        logger.close()
    return TrainResult(Path(run.path), step, 0, last_eval)
