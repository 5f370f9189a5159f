"""Soft Actor-Critic (Haarnoja et al. 2018, with the learned temperature of "SAC: Algorithms and
Applications"): the suite's off-policy learner for continuous actions.

Two layers:

* ``SAC`` holds the networks and optimisers and performs gradient steps on batches it is given. Methods
  that reuse SAC with their own data call it directly: METRA trains it on [obs, z] (``context``) with
  intrinsic rewards it recomputes every step (``update_critic(batch, reward=...)``).
* ``SACAgent`` is the runner-facing agent (``agents.base``): it stores every transition in a replay
  buffer, acts uniformly at random for the first ``learning_starts`` env steps, then runs
  ``gradient_steps`` updates every ``train_freq`` env steps (counted over all parallel envs, so the
  updates-per-transition ratio does not depend on ``num_envs``).

Batches are dicts of tensors: ``obs``, ``action`` (env units), ``reward``, ``next_obs``, ``terminated``
(True: do not bootstrap) and optionally ``context`` (a vector that conditions actor and critics on both
s and s', such as a skill). Actions are mapped to [-1, 1]^d before they reach the networks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import Agent, AgentConfig, Transition
from agents.buffers import ReplayBuffer
from agents.nets import QNetwork, SquashedGaussianActor, make_encoder


@dataclass
class SACConfig(AgentConfig):
    name: str = "sac"
    lr: float = 3e-4  # actor, critics and temperature
    gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 5_000  # env steps of uniform random actions before the first update
    train_freq: int = 1  # env steps (summed over envs) per update round
    gradient_steps: int = 1  # gradient steps per update round
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    init_alpha: float = 1.0  # initial temperature (SAC v2's and SB3's default)
    autotune_alpha: bool = True
    target_entropy: float | None = None  # None: -|A| (METRA uses -|A|/2)
    encoder: str = "auto"  # observation encoder, see agents.nets.make_encoder


def check_continuous_actions(action_space: gym.Space, agent: str) -> None:
    """SAC squashes a Gaussian into the action box, so the box must exist, be a vector and be bounded."""
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"agent {agent} needs a continuous (Box) action space; got {action_space}")
    if len(action_space.shape) != 1:
        raise ValueError(f"agent {agent} needs a one-dimensional Box action space; got {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"agent {agent} needs finite action bounds (it squashes actions with tanh); got {action_space}")


def gradient_rounds(before: int, after: int, learning_starts: int, train_freq: int) -> int:
    """Update rounds due when the env-step count moves from ``before`` to ``after``: one at every count s in
    (before, after] with s % train_freq == 0 and s >= learning_starts (independent of the number of envs)."""
    first = max(before, learning_starts - 1)
    return max(0, after // train_freq - first // train_freq)


def real_transitions(batch: Transition) -> int:
    """Rows of a vector step that are transitions (dropped rows of a lost rollout worker are not)."""
    return len(batch.reward) - (0 if batch.dropped is None else int(np.sum(batch.dropped)))


class SAC:
    """Twin soft Q critics with target copies, a squashed Gaussian actor and a temperature alpha.

    ``context_dim`` > 0 makes every network take an extra ``batch["context"]`` vector."""

    def __init__(self, cfg: SACConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: torch.device | str = "cpu", context_dim: int = 0) -> None:
        check_continuous_actions(action_space, cfg.name)
        if cfg.init_alpha <= 0 or cfg.train_freq < 1 or cfg.gradient_steps < 0 or cfg.batch_size < 1:
            raise ValueError(f"agent {cfg.name} needs init_alpha > 0, train_freq >= 1, gradient_steps >= 0 and "
                             f"batch_size >= 1; got {cfg.init_alpha}, {cfg.train_freq}, {cfg.gradient_steps}, "
                             f"{cfg.batch_size}")
        self.cfg = cfg
        self.device = torch.device(device)
        action_dim = int(np.prod(action_space.shape))
        low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
        high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.action_center, self.action_scale = (high + low) / 2, (high - low) / 2

        def network(cls: type[nn.Module]) -> nn.Module:
            encoder, feature_dim = make_encoder(observation_space, cfg.encoder)  # one encoder per network
            return cls(encoder, feature_dim, context_dim, action_dim, cfg.hidden_sizes)

        self.actor = network(SquashedGaussianActor).to(self.device)
        self.critics = nn.ModuleList([network(QNetwork), network(QNetwork)]).to(self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)

        self.target_entropy = float(-action_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=self.device,
                                      requires_grad=cfg.autotune_alpha)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.lr) if cfg.autotune_alpha else None

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    # -- acting -------------------------------------------------------------------------------------

    def to_env_action(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.action_center + self.action_scale * normalised

    def normalise_action(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.action_center) / self.action_scale

    @torch.no_grad()
    def act(self, obs: torch.Tensor, context: torch.Tensor | None = None, deterministic: bool = False) -> torch.Tensor:
        """Actions in env units for a batch of observations (tanh of the mean when ``deterministic``)."""
        action, _ = self.actor.sample(obs, context, deterministic)
        return self.to_env_action(action)

    # -- losses and updates -------------------------------------------------------------------------

    def min_q(self, critics: nn.ModuleList, obs: torch.Tensor, action: torch.Tensor,
              context: torch.Tensor | None) -> torch.Tensor:
        """Clipped double Q: the minimum of the two critics counters Q over-estimation."""
        return torch.min(critics[0](obs, action, context), critics[1](obs, action, context))

    def critic_loss(self, batch: dict[str, torch.Tensor],
                    reward: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Soft Bellman residual, 1/2 E[(Q_i(s, a) - y)^2] summed over both critics, with the target
        y = r + gamma (1 - terminated) [min_i Q'_i(s', a') - alpha log pi(a' | s')], a' ~ pi(. | s').
        ``reward`` replaces ``batch["reward"]`` (intrinsic rewards computed by the caller)."""
        context = batch.get("context")
        reward = batch["reward"] if reward is None else reward
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch["next_obs"], context)
            soft_value = self.min_q(self.critic_targets, batch["next_obs"], next_action, context) - self.alpha * next_log_prob
            target = reward + self.cfg.gamma * (1.0 - batch["terminated"].float()) * soft_value
        action = self.normalise_action(batch["action"])
        q1, q2 = (critic(batch["obs"], action, context) for critic in self.critics)
        loss = 0.5 * ((q1 - target) ** 2).mean() + 0.5 * ((q2 - target) ** 2).mean()
        return loss, {"critic_loss": loss.item(), "q1": q1.mean().item(), "q2": q2.mean().item(),
                      "q_target": target.mean().item()}

    def update_critic(self, batch: dict[str, torch.Tensor], reward: torch.Tensor | None = None) -> dict[str, float]:
        loss, metrics = self.critic_loss(batch, reward)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return metrics

    def update_actor_and_alpha(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Actor: minimise E[alpha log pi(a|s) - min_i Q_i(s, a)] with a reparameterised a ~ pi.
        Temperature: minimise E[-log_alpha (log pi(a|s) + target_entropy)], which raises alpha while
        the policy's entropy is below the target and lowers it above."""
        context = batch.get("context")
        action, log_prob = self.actor.sample(batch["obs"], context)
        self.critics.requires_grad_(False)  # the actor loss must not leave gradients in the critics
        actor_loss = (self.alpha * log_prob - self.min_q(self.critics, batch["obs"], action, context)).mean()
        self.critics.requires_grad_(True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        metrics = {"actor_loss": actor_loss.item(), "entropy": -log_prob.mean().item()}
        if self.alpha_optimizer is not None:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
            metrics["alpha_loss"] = alpha_loss.item()
        metrics["alpha"] = self.alpha.item()
        return metrics

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging: theta' <- (1 - tau) theta' + tau theta."""
        for target, online in zip(self.critic_targets.parameters(), self.critics.parameters()):
            target.lerp_(online, self.cfg.tau)

    def update(self, batch: dict[str, torch.Tensor], reward: torch.Tensor | None = None) -> dict[str, float]:
        """One SAC gradient step: critics, then actor and temperature, then the target critics."""
        metrics = self.update_critic(batch, reward)
        metrics.update(self.update_actor_and_alpha(batch))
        self.update_targets()
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "critic_targets": self.critic_targets.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
        }
        if self.alpha_optimizer is not None:
            state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.critic_targets.load_state_dict(state["critic_targets"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])


class SACAgent(Agent):
    """SAC behind the runner's act/observe contract, with its own replay buffer."""

    def __init__(self, cfg: SACConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        self.sac = SAC(cfg, observation_space, action_space, device)
        self.buffer = ReplayBuffer.for_spaces(cfg.buffer_size, observation_space, action_space, device)
        self.rng = np.random.default_rng()  # replay sampling and the initial random actions
        self.env_steps = 0  # transitions observed, summed over envs
        self.updates = 0  # gradient steps taken

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        space = self.action_space
        if not deterministic and self.env_steps < self.cfg.learning_starts:
            return self.rng.uniform(space.low, space.high, size=(len(obs), *space.shape)).astype(space.dtype)
        action = self.sac.act(torch.as_tensor(obs, device=self.device), deterministic=deterministic)
        return action.cpu().numpy().astype(space.dtype)

    def observe(self, batch: Transition) -> dict[str, float]:
        self.buffer.add(batch)
        before = self.env_steps
        self.env_steps += real_transitions(batch)
        rounds = gradient_rounds(before, self.env_steps, self.cfg.learning_starts, self.cfg.train_freq)
        metrics: dict[str, float] = {}
        for _ in range(rounds * self.cfg.gradient_steps):
            metrics = self.sac.update(self.buffer.sample(self.cfg.batch_size, self.rng))
            self.updates += 1
        if metrics:
            metrics["updates"] = float(self.updates)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"sac": self.sac.state_dict(), "buffer": self.buffer.state_dict(), "rng": self.rng.bit_generator.state,
                "env_steps": self.env_steps, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sac.load_state_dict(state["sac"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
