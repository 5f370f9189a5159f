"""The run shell: everything a training run does that is not the method's own loop, written once.

Every method declares its kind (``Agent.kind``: online, offline, phased, population, students) and
``runners.trainers`` has one small ``Trainer`` class per kind that knows how to advance that kind of
method by one unit of work (a vector step, a gradient step, a batch of whole episodes). The shell owns the
rest, identically for all of them:

* the run directory, the recorded config and the resume checks (``runners.rundir``): a bad invocation is a
  one-line ``ConfigError`` before anything is written;
* the checkpoint: ``{version, agent, rng, step, episodes, spaces}`` plus the trainer's own entries,
  written atomically on the ``checkpoint.every`` schedule, at the end and on Ctrl-C, and restored on resume;
* the logger (TensorBoard + CSV, ``runners.logger``), the ``log_every`` / ``eval.every`` /
  ``checkpoint.every`` schedule in the trainer's step unit, the progress bar;
* evaluation with the agent's suites (``runners.evaluation``), periodic and final;
* ``TrainHooks``, the callbacks a driver such as a Ray Tune trial uses;
* Ctrl-C: the first one is taken at the next boundary between two units of work, so the checkpoint
  written on the way out never holds a half-done update (a PPO rollout buffer full but not learnt from);
  a second Ctrl-C stops at once, without a checkpoint (the newest periodic one stays).

The loop of the shell, the template every trainer plugs into (in the spirit of SB3's
``OffPolicyAlgorithm.learn`` with the algorithm's ``train``)::

    trainer.start(checkpoint)                      # restore, reset envs
    while trainer.step < steps:
        trainer.advance()                          # the method's unit of work
        log / evaluate / checkpoint when due
    final evaluation, trainer.finish(), checkpoint
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs.datasets
from agents import Agent
from envs import EnvSpec
from runners.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from runners.config import ConfigError
from runners.evaluation import EvalContext, evaluate
from runners.logger import Logger
from runners.rundir import RunDir, write_config

if TYPE_CHECKING:
    from runners.trainers.base import Trainer

# Checkpoint format version: bump when the layout of the saved dict changes.
CHECKPOINT_VERSION = 1


class TrainHooks:
    """Callbacks of the run shell for code that drives ``train`` (e.g. a Ray Tune trial). The defaults do
    nothing; override what you need."""

    def on_log(self, step: int, scalars: dict[str, float]) -> None:
        """Training scalars of one logging interval (``train/`` names without the prefix)."""

    def on_eval(self, step: int, results: dict[str, Any]) -> None:
        """Results of a periodic (or the final) evaluation, by suite."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written to ``path`` (inside the run directory)."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    episodes: int
    last_eval: dict[str, Any] | None


def space_signature(observation_space, action_space) -> dict[str, Any]:
    """What an agent's networks depend on: shapes, dtypes and the number of discrete actions."""
    return {"observation": envs.datasets.space_signature(observation_space),
            "action": envs.datasets.space_signature(action_space)}


def read_checkpoint(path: Path | None, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to resume from, checked for this suite's format version, or None for a fresh run."""
    if path is None:
        return None
    checkpoint = load_checkpoint(path, device)
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {path} has format version {checkpoint.get('version')}, "
                          f"this suite reads {CHECKPOINT_VERSION}")
    return checkpoint


def eval_suites_for(cfg: DictConfig, agent: Agent, spec: EnvSpec, heldout: bool = False) -> list[str]:
    """The configured suites, else the agent's defaults; ``heldout`` (rl-eval) adds the agent's report suites
    and the test set of levels of a curriculum run (too long for periodic evaluation unless asked for in
    ``eval.suites``)."""
    if cfg.eval.suites:
        return list(cfg.eval.suites)
    suites = list(agent.eval_suites)
    if heldout:
        suites += [s for s in (*agent.report_suites, *spec.report_suites) if s not in suites]
    if heldout and cfg.curriculum.name != "none" and spec.test_levels() is not None and "heldout" not in suites:
        suites.append("test_levels")
    return suites


def evaluate_agent(cfg: DictConfig, agent: Agent, spec: EnvSpec, logger: Logger, step: int) -> dict[str, Any]:
    """Periodic evaluation with the agent's suites; fixed seed so two runs compare like for like."""
    ctx = EvalContext(agent=agent, env=spec, episodes=cfg.eval.episodes, seed=cfg.seed + 1_000_003,
                      deterministic=cfg.eval.deterministic, out_dir=None, step=step)
    results = evaluate(ctx, eval_suites_for(cfg, agent, spec)) if cfg.eval.episodes > 0 else {}
    for name, result in results.items():
        logger.log(result.get("scalars", {}), step, "eval" if name == "returns" else f"eval/{name}")
    logger.flush()
    return {"step": step, "results": results}


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[threading.Event]:
    """Within the block, SIGINT sets the yielded event instead of raising; a second SIGINT raises at once.
    Outside the main thread (a Tune trial's thread) signals cannot be caught and Ctrl-C keeps its default; a
    process that ignores SIGINT keeps ignoring it."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield requested  # SIG_IGN: the process was started to ignore Ctrl-C (nohup, a background job); keep it so
        return

    def handler(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


class RunShell:
    """Drives one ``Trainer`` through a run: resume, schedule, logs, evaluation, checkpoints, Ctrl-C."""

    def __init__(self, cfg: DictConfig, run: RunDir, spec: EnvSpec, trainer: Trainer, hooks: TrainHooks,
                 checkpoint: dict[str, Any] | None) -> None:
        self.cfg, self.run, self.spec, self.trainer, self.hooks = cfg, run, spec, trainer, hooks
        self.checkpoint = checkpoint

    def _schedule(self, every: int) -> int:
        """The next step at which an event with period ``every`` is due (never, for ``every <= 0``)."""
        step = self.trainer.step
        return (step // every + 1) * every if every > 0 else self.trainer.total_steps + 1

    def save(self) -> Path:
        trainer = self.trainer
        trainer.before_checkpoint()
        self.logger.flush()  # everything logged up to this step survives a crash after the checkpoint
        state = {
            "version": CHECKPOINT_VERSION,
            "agent": trainer.agent.state_dict(),
            "rng": rng_state(),
            "step": trainer.step,
            "episodes": trainer.episodes,
            "spaces": space_signature(trainer.observation_space, trainer.action_space),
            **trainer.state_dict(),
        }
        path = save_checkpoint(self.run.path, trainer.step, state, keep=self.cfg.checkpoint.keep)
        self.hooks.on_checkpoint(trainer.step, path)
        return path

    def _evaluate(self) -> None:
        self.last_eval = evaluate_agent(self.cfg, self.trainer.agent, self.spec, self.logger, self.trainer.step)
        self.hooks.on_eval(self.trainer.step, self.last_eval["results"])
        self.trainer.after_eval(self.run.path)

    def run_training(self, overrides: list[str]) -> TrainResult:
        cfg, trainer, checkpoint = self.cfg, self.trainer, self.checkpoint
        if checkpoint is not None:
            trainer.check_resume(checkpoint)
        write_config(self.run, cfg, overrides)
        if checkpoint is not None:
            trainer.agent.load_state_dict(checkpoint["agent"])
            set_rng_state(checkpoint["rng"])
            trainer.step, trainer.episodes = int(checkpoint["step"]), int(checkpoint.get("episodes", 0))
        self.logger = Logger(self.run.path, start_step=trainer.step)
        if trainer.step == 0:
            self.logger.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
        trainer.start(checkpoint, self.logger)

        self.next_log, self.next_eval = self._schedule(cfg.log_every), self._schedule(cfg.eval.every)
        self.next_ckpt = self._schedule(cfg.checkpoint.every)
        self.last_eval: dict[str, Any] | None = None
        self._t0, self._steps_at_t0 = time.perf_counter(), trainer.step
        show_progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit=trainer.unit, disable=not show_progress,
                   dynamic_ncols=True)
        between_units = False  # True when Ctrl-C was taken at a boundary between two units of work
        try:
            with deferred_interrupt() as stop_requested:
                while trainer.step < trainer.total_steps:
                    before = trainer.step
                    trainer.advance()
                    bar.update(trainer.step - before)
                    self._due_events(bar)
                    if stop_requested.is_set():
                        between_units = True
                        raise KeyboardInterrupt
            if self.last_eval is None or self.last_eval["step"] != trainer.step:
                self._evaluate()
            trainer.finish()
            self.save()
        except KeyboardInterrupt:
            if between_units:
                self.save()  # the same command resumes from here
            raise
        finally:
            bar.close()
            self.logger.close()
        return TrainResult(Path(self.run.path), trainer.step, trainer.episodes, self.last_eval)

    def _due_events(self, bar: tqdm) -> None:
        """Log, evaluate and checkpoint where the schedule says so, in that order."""
        cfg, trainer = self.cfg, self.trainer
        if trainer.step >= self.next_log:
            rate = (trainer.step - self._steps_at_t0) / max(time.perf_counter() - self._t0, 1e-9)
            scalars = trainer.log_scalars(rate)
            self.logger.log(scalars, trainer.step, "train")
            self.hooks.on_log(trainer.step, scalars)
            self.next_log = self._schedule(cfg.log_every)
            if note := trainer.progress_note():
                bar.set_postfix_str(note)
        if trainer.step >= self.next_eval:
            self._evaluate()
            self.next_eval = self._schedule(cfg.eval.every)
        if trainer.step >= self.next_ckpt:
            self.save()
            self.next_ckpt = self._schedule(cfg.checkpoint.every)
