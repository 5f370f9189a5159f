"""The agent contract.

The runner owns the environment loop (rollout collection is kept apart from the algorithm, so scaling
out, curricula and logging never touch agent code). Per vector step it calls

    actions = agent.act(obs, deterministic=False)
    next_obs, reward, terminated, truncated, info = envs.step(actions)
    metrics = agent.observe(Transition(obs, actions, reward, real_next_obs, terminated, truncated))

``observe`` stores the batch and runs whatever updates the algorithm schedules at that point (every
step for SAC, every full rollout for PPO); it returns the training scalars of those updates, or an empty
dict. ``real_next_obs`` is the last observation of the episode where an episode ended (see
``envs.base``), so agents never see the reset observation as a successor state.

Agents are built from their typed config dataclass, the spaces and the number of parallel envs, and
their whole state (networks, optimisers, replay data, counters) round-trips through ``state_dict`` /
``load_state_dict`` as plain tensors, never pickled objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch


@dataclass
class AgentConfig:
    """Base of every agent config. ``name`` is the CLI name (``agent=NAME``)."""

    name: str = "?"


@dataclass
class Transition:
    """One vector step: arrays with a leading ``num_envs`` axis."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray  # the real successor: info["final_obs"] where an episode ended
    terminated: np.ndarray
    truncated: np.ndarray
    # False where the successor observation is unknown (a native vector env that resets in place);
    # those steps are always terminal, so nothing bootstraps from ``next_obs`` there.
    next_obs_valid: np.ndarray | None = None
    # True for rows that are not transitions at all: the env's episode was lost with a crashed rollout
    # worker and the row only carries the new episode's first observation. Agents must not learn from them.
    dropped: np.ndarray | None = None
    # Per-step info fields the env spec declares (e.g. ``cost``, ``xy``, ``level``): one array per key, each
    # with a leading ``num_envs`` axis.
    extras: dict[str, np.ndarray] = field(default_factory=dict)


# The trainer kinds that drive a method (``Agent.kind``): ``online`` learns from env steps it collects,
# ``offline`` takes gradient steps on a dataset, ``phased`` runs a sequence of offline/online phases,
# ``population`` proposes policies that are scored by whole episodes, ``students`` is a teacher owning
# several student learners that play the same level batch.
METHOD_KINDS: tuple[str, ...] = ("online", "offline", "phased", "population", "students")


class Agent:
    """Base class: stores config, spaces and device; subclasses implement the algorithm."""

    # How many parallel envs the agent collects from unless ``runner.num_envs`` says otherwise.
    default_num_envs: ClassVar[int] = 1
    # Evaluation suites (names in ``runners.evaluation``) that ``rl-eval`` runs for this agent by default.
    eval_suites: ClassVar[tuple[str, ...]] = ("returns",)
    # Further suites ``rl-eval`` runs by default, too long for periodic evaluation during training.
    report_suites: ClassVar[tuple[str, ...]] = ()
    # The trainer kind that drives the method, one of ``METHOD_KINDS``. Offline agents (HILP, GCBC) learn
    # from a dataset, never from env steps: the offline trainer calls ``set_dataset(dataset, source)`` once
    # (an ``envs.datasets.TransitionDataset`` and its path), then ``gradient_step() -> dict[str, float]``
    # once per step of ``steps``; ``observe`` is never called.
    kind: ClassVar[str] = "online"

    def __init__(
        self,
        cfg: AgentConfig,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        device: torch.device,
    ) -> None:
        self.cfg = cfg
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_envs = num_envs
        self.device = device

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind not in METHOD_KINDS:
            raise ValueError(f"{cls.__name__}.kind is {cls.kind!r}; valid kinds: {', '.join(METHOD_KINDS)}")

    @property
    def offline(self) -> bool:
        """Whether the method learns from a dataset only (``kind == "offline"``)."""
        return self.kind == "offline"

    def seed(self, seed: int) -> None:
        """Seed any generator of the agent's own (torch's global generator is seeded by the runner)."""

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        raise NotImplementedError

    def observe(self, batch: Transition) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def reset_episodes(self, done: np.ndarray) -> None:
        """Called with a mask of envs whose episode ended (recurrent or skill agents reset per-env state)."""
