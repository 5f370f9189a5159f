"""One experiment: build env and agent from the config, collect and learn, log, evaluate, checkpoint.

This loop is the ``learn`` of every agent (see ``agents.base``): agents only see transitions, so the
same agent trains on a local vector env today and on remote workers tomorrow.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from agents import AGENTS, Agent
from envs import EnvSpec
from envs.datasets import DatasetError, DatasetWriter
from runners.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from runners.config import ConfigError
from runners.curriculum import CurriculumDriver, build_teacher
from runners.evaluation import EvalContext, evaluate
from runners.logger import Logger
from runners.rollout import EpisodeTracker, collect_step, make_vector_env
from runners.rundir import RunDir, default_run_dir, prepare_run_dir, write_config
from runners.skill_eval import TrainingCoverage, x_only

# Checkpoint format version: bump when the layout of the saved dict changes.
CHECKPOINT_VERSION = 1


class TrainHooks:
    """Callbacks of the training loop for code that drives ``train`` (e.g. a Ray Tune trial). The
    defaults do nothing; override what you need."""

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

    def sig(space) -> list:
        return [type(space).__name__, list(space.shape or ()), str(space.dtype), int(getattr(space, "n", 0))]

    return {"observation": sig(observation_space), "action": sig(action_space)}


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is available (torch.cuda.is_available() is False); use device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_agent(cfg: DictConfig, env: EnvSpec, observation_space, action_space, num_envs: int,
                device: torch.device) -> Agent:
    agent_cfg = OmegaConf.to_object(cfg.agent)
    _, agent_cls = AGENTS[cfg.agent.name]
    try:
        return agent_cls(agent_cfg, observation_space, action_space, num_envs, device)
    except ValueError as exc:  # e.g. a continuous-control agent on a discrete env
        raise ConfigError(f"agent {cfg.agent.name} on env {env.describe()}: {exc}") from None


def num_envs_for(cfg: DictConfig) -> int:
    """``runner.num_envs``, else the agent's default, raised to one env per Ray worker at least."""
    if cfg.runner.num_envs is not None:
        return int(cfg.runner.num_envs)
    default = AGENTS[cfg.agent.name][1].default_num_envs
    return max(default, int(cfg.runner.num_workers)) if cfg.runner.backend == "ray" else default


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


def train(cfg: DictConfig, overrides: list[str] | None = None, hooks: TrainHooks | None = None) -> TrainResult:
    """Run (or resume) the experiment described by ``cfg``; returns where it went and how far."""
    spec: EnvSpec = OmegaConf.to_object(cfg.env)
    device = resolve_device(cfg.device)
    run_path = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg, spec.describe())
    run = prepare_run_dir(cfg, run_path)
    checkpoint = load_checkpoint(run.resume_from, device) if run.resume_from else None
    if checkpoint is not None and checkpoint.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {run.resume_from} has format version {checkpoint.get('version')}, "
                          f"this suite reads {CHECKPOINT_VERSION}")
    cfg.run_dir = str(run.path)

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    num_envs = num_envs_for(cfg)
    envs = make_vector_env(spec, num_envs, cfg.runner.backend, cfg.seed, cfg.runner.num_workers,
                           cfg.ray.address, cfg.ray.num_cpus)
    try:
        agent = build_agent(cfg, spec, envs.single_observation_space, envs.single_action_space, num_envs, device)
        agent.seed(cfg.seed)
        if agent.offline:  # learns from cfg.dataset, never from env steps (runners.offline)
            from runners.offline import train_offline

            return train_offline(cfg, run, spec, agent, envs.single_observation_space, envs.single_action_space,
                                 checkpoint, overrides or [], hooks or TrainHooks())
        teacher = build_teacher(cfg, spec)
        curriculum = CurriculumDriver(teacher, num_envs, student=agent) if teacher is not None else None
        write_config(run, cfg, overrides or [])
        return _loop(cfg, run, spec, envs, agent, num_envs, checkpoint, curriculum, hooks or TrainHooks())
    finally:
        envs.close()


def _loop(cfg: DictConfig, run: RunDir, spec: EnvSpec, envs, agent: Agent, num_envs: int,
          checkpoint: dict[str, Any] | None, curriculum: CurriculumDriver | None, hooks: TrainHooks) -> TrainResult:
    step, episodes = 0, 0
    if checkpoint is not None:
        agent.load_state_dict(checkpoint["agent"])
        if curriculum is not None:
            curriculum.load_state_dict(checkpoint["curriculum"])
        set_rng_state(checkpoint["rng"])
        step, episodes = int(checkpoint["step"]), int(checkpoint["episodes"])
    logger = Logger(run.path, start_step=step)
    if step == 0:
        logger.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
    tracker = EpisodeTracker(num_envs)
    tracker.total_episodes = episodes
    coverage = TrainingCoverage(num_envs, x_only(spec))
    if checkpoint is not None and "coverage" in checkpoint:
        coverage.load_state_dict(checkpoint["coverage"])
    # A resumed run starts fresh episodes from a seed that depends on where it resumes, so resuming is
    # deterministic but does not replay the first run's episodes.
    if curriculum is not None:
        obs, reset_info = curriculum.reset(envs, cfg.seed + step)
    else:
        obs, reset_info = envs.reset(seed=cfg.seed + step)
    recorder = _dataset_writer(cfg, run, spec, envs, num_envs, resume_step=step if checkpoint is not None else None)
    if recorder is not None:
        recorder.begin(obs, reset_info)

    def schedule(every: int) -> int:
        return (step // every + 1) * every if every > 0 else cfg.steps + 1

    next_log, next_eval, next_ckpt = schedule(cfg.log_every), schedule(cfg.eval.every), schedule(cfg.checkpoint.every)
    show_progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=not show_progress, dynamic_ncols=True)
    last_eval: dict[str, Any] | None = None
    recent_returns: list[float] = []
    metrics: dict[str, float] = {}
    t0, steps_at_t0 = time.perf_counter(), step

    def save() -> None:
        if recorder is not None:  # the dataset holds exactly the episodes finished by this checkpoint
            recorder.flush(step)
        logger.flush()  # everything logged up to this step survives a crash after the checkpoint
        state = {
            "version": CHECKPOINT_VERSION,
            "agent": agent.state_dict(),
            "rng": rng_state(),
            "step": step,
            "episodes": tracker.total_episodes,
            "spaces": space_signature(envs.single_observation_space, envs.single_action_space),
            "coverage": coverage.state_dict(),
        }
        if curriculum is not None:
            state["curriculum"] = curriculum.state_dict()
        hooks.on_checkpoint(step, save_checkpoint(run.path, step, state, keep=cfg.checkpoint.keep))

    try:
        while step < cfg.steps:
            obs, update_metrics, info = collect_step(agent, envs, obs, spec.provides_final_obs, tracker, recorder)
            metrics.update(update_metrics)
            step += num_envs
            bar.update(num_envs)
            finished = tracker.drain()
            ended = np.zeros(num_envs, dtype=bool)
            ended[[i for i, _, _ in finished]] = True
            coverage.step(info, ended | info.get("dropped", False))
            for _, ret, length in finished:
                recent_returns = (recent_returns + [ret])[-20:]
                logger.log({"episode_return": ret, "episode_length": length}, step, "train")
            if curriculum is not None:
                curriculum.on_step(envs, info, finished, info.get("dropped"))  # (env, return, length) each
            if step >= next_log:
                fps = (step - steps_at_t0) / max(time.perf_counter() - t0, 1e-9)
                scalars = {**metrics, "steps_per_second": fps, "episodes": tracker.total_episodes,
                           "dropped_episodes": tracker.dropped_episodes, **coverage.scalars()}
                if recent_returns:
                    scalars["recent_return"] = float(np.mean(recent_returns))
                logger.log(scalars, step, "train")
                hooks.on_log(step, scalars)
                metrics = {}
                if curriculum is not None:
                    logger.log(curriculum.log_scalars(), step, "curriculum")
                next_log = schedule(cfg.log_every)
                if recent_returns:
                    bar.set_postfix(ret=f"{np.mean(recent_returns):.1f}")
            if step >= next_eval:
                last_eval = _evaluate(cfg, agent, spec, logger, step)
                hooks.on_eval(step, last_eval["results"])
                if curriculum is not None:
                    curriculum.plot(run.path, step)
                next_eval = schedule(cfg.eval.every)
            if step >= next_ckpt:
                save()
                next_ckpt = schedule(cfg.checkpoint.every)
        if last_eval is None or last_eval["step"] != step:
            last_eval = _evaluate(cfg, agent, spec, logger, step)
            hooks.on_eval(step, last_eval["results"])
        if recorder is not None:
            recorder.close(step)
        save()
    except KeyboardInterrupt:
        save()  # keep what was learnt; the same command resumes from here
        raise
    finally:
        bar.close()
        logger.close()
    return TrainResult(run.path, step, tracker.total_episodes, last_eval)


def _dataset_writer(cfg: DictConfig, run: RunDir, spec: EnvSpec, envs, num_envs: int,
                    resume_step: int | None) -> DatasetWriter | None:
    """``save_dataset=true``: every transition collected goes to ``run_dir/dataset`` (see envs.datasets)."""
    if not cfg.save_dataset:
        return None
    metadata = {"agent": cfg.agent.name, "agent_config": OmegaConf.to_container(cfg.agent), "seed": int(cfg.seed),
                "steps": int(cfg.steps), "num_envs": num_envs}
    try:
        return DatasetWriter(run.path / "dataset", spec, envs.single_observation_space, envs.single_action_space,
                             num_envs, metadata, resume_step=resume_step)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


def _evaluate(cfg: DictConfig, agent: Agent, spec: EnvSpec, logger: Logger, step: int) -> dict[str, Any]:
    """Periodic evaluation with the agent's suites; fixed seed so two runs compare like for like."""
    ctx = EvalContext(agent=agent, env=spec, episodes=cfg.eval.episodes, seed=cfg.seed + 1_000_003,
                      deterministic=cfg.eval.deterministic, out_dir=None, step=step)
    results = evaluate(ctx, eval_suites_for(cfg, agent, spec)) if cfg.eval.episodes > 0 else {}
    for name, result in results.items():
        logger.log(result.get("scalars", {}), step, "eval" if name == "returns" else f"eval/{name}")
    logger.flush()
    return {"step": step, "results": results}
