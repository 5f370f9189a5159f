"""What every trainer gives the run shell (``runners.shell``).

A trainer advances one kind of method by one unit of work at a time and keeps the counters the shell
schedules on. It builds what its kind needs in ``__init__`` (envs, dataset, the agent) and raises
``ConfigError`` there for anything wrong, before the shell writes to the run directory; the shell then
restores the agent and RNG from a checkpoint, calls ``start`` and loops over ``advance``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from agents import AGENTS, Agent
from envs import EnvSpec
from runners.config import ConfigError
from runners.logger import Logger
from runners.rollout import make_vector_env


def build_agent(cfg: DictConfig, env: EnvSpec, observation_space, action_space, num_envs: int,
                device: torch.device) -> Agent:
    """The configured agent for these spaces; a method that cannot run on them is a one-line ConfigError."""
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


class Trainer:
    """Base of the trainers: counters, spaces and the agent, and do-nothing defaults for the optional hooks."""

    kind: ClassVar[str] = "?"
    # What ``steps`` (and log_every, eval.every, checkpoint.every, the x axis of the logs) counts.
    unit: ClassVar[str] = "step"

    agent: Agent
    observation_space: gym.Space
    action_space: gym.Space

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        self.cfg, self.spec, self.device = cfg, spec, device
        self.step = 0  # units of work done, over every invocation of the run
        self.episodes = 0  # episodes finished (0 for kinds that play none)
        self.total_steps = int(cfg.steps)

    def open_envs(self, num_envs: int, check=None) -> None:
        """The configured back-end's vector envs (``envs``, ``num_envs``), their spaces, and the agent built
        for them (``agent``); ``check(agent)`` may refuse it. Nothing stays open if building fails."""
        cfg = self.cfg
        self.num_envs = num_envs
        self.envs = make_vector_env(self.spec, num_envs, cfg.runner.backend, cfg.seed, cfg.runner.num_workers,
                                    cfg.ray.address, cfg.ray.num_cpus)
        try:
            self._make_agent(self.envs.single_observation_space, self.envs.single_action_space, num_envs, check)
        except BaseException:
            self.envs.close()
            raise

    def make_agent_without_envs(self, num_envs: int, check=None) -> None:
        """For trainers that step no vector env of their own: the spaces of one env of the spec, and the agent
        built for them (``agent``) as ``open_envs`` builds it."""
        env = self.spec.make()
        spaces = env.observation_space, env.action_space
        env.close()
        self._make_agent(*spaces, num_envs, check)

    def _make_agent(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int, check) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.agent = build_agent(self.cfg, self.spec, observation_space, action_space, num_envs, self.device)
        if check is not None:
            check(self.agent)
        self.agent.seed(self.cfg.seed)

    # -- what a kind must provide ---------------------------------------------------------------------

    def check_resume(self, checkpoint: dict[str, Any]) -> None:
        """Refuse (ConfigError) to resume from ``checkpoint`` before anything is written, if it cannot be."""

    def start(self, checkpoint: dict[str, Any] | None, logger: Logger) -> None:
        """Restore the trainer's own checkpoint entries and get ready to advance (``step`` is restored)."""
        self.logger = logger

    def advance(self) -> None:
        """One unit of work; increases ``step``."""
        raise NotImplementedError

    def log_scalars(self, rate: float) -> dict[str, float]:
        """``train/`` scalars since the last call; ``rate`` is units per second since this invocation began."""
        raise NotImplementedError

    # -- optional hooks ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Entries the trainer adds to the checkpoint, besides the agent, RNG and counters."""
        return {}

    def before_checkpoint(self) -> None:
        """Flush what must be on disk when the checkpoint of this step exists (a dataset's episodes)."""

    def after_eval(self, run_path: Path) -> None:
        """After each evaluation (a curriculum plots its teacher)."""

    def progress_note(self) -> str:
        """A short text for the progress bar."""
        return ""

    def finish(self) -> None:
        """The last unit is done (before the final checkpoint)."""

    def close(self) -> None:
        """Release envs and workers."""
