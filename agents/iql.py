"""Offline learning blocks: the expectile loss, an IQL learner with AWR policy extraction, and goal-relabelled
sampling from a dataset of transitions. HILP and GCBC build on them (and goal-conditioned IQL and the offline
phase of safe RL can: nothing here is specific to one method).

Implicit Q-Learning (Kostrikov, Nair and Levine, ICLR 2022) never queries Q at actions outside the data:

    value       L_V = E[ L_2^tau(min_i Q'_i(s, a) - V(s)) ],   L_2^tau(u) = |tau - 1(u < 0)| u^2   (expectile tau)
    critics     L_Q = sum_i E[ (r + gamma (1 - done) V(s') - Q_i(s, a))^2 ]
    policy      L_pi = -E[ min(exp(beta (min_i Q'_i(s, a) - V(s))), 100) log pi(a | s) ]   (AWR, temperature beta)

with Q' Polyak-averaged copies of the twin critics (rate ``tau``). The expectile tau -> 1 makes V an upper
expectile of Q over the data's actions, i.e. close to the value of the best in-support action.

``IQL`` takes batches as dicts of tensors like ``agents.sac``: ``obs``, ``action`` (env units), ``reward``,
``next_obs``, ``terminated`` and optionally ``context`` (a skill or goal vector given to every network).
Actions are mapped to [-1, 1]^d from the action space's bounds before they reach the networks, and the
policy's samples are clipped to that box (an unsquashed Gaussian with a state-independent std, as in the
HILP code).

Update order: as in HILP's JAX code, the three losses of a step are computed at the same parameters (the
critics' target and the advantage use V before this step's update) and every network then takes its
optimiser step; the target critics follow. (IQL's reference code updates V first and lets Q and the policy
see the new V; the fixed point is the same.)

``OfflineData`` holds a ``TransitionDataset`` (``envs.datasets``; any object with its fields) as NumPy
arrays and samples uniform batches and goals for goal-conditioned learners (HILP's ``GCDataset`` scheme):
a goal is the observation at a later step of the same episode (geometric offset with parameter 1 - gamma,
or uniform, cut at the episode's last transition), a random dataset observation, or the current one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.nets import GaussianActor, QNetwork, ValueNetwork, make_encoder

MAX_AWR_WEIGHT = 100.0  # exp(advantage * temperature) is clipped here, as in the IQL and HILP code


def expectile_loss(diff: torch.Tensor, expectile: float, adv: torch.Tensor | None = None) -> torch.Tensor:
    """Elementwise |tau - 1(adv < 0)| * diff^2 (asymmetric least squares; ``adv`` defaults to ``diff``).
    HILP weights each ensemble member's residual by the sign of a shared advantage, hence the two arguments."""
    adv = diff if adv is None else adv
    weight = torch.where(adv >= 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


def check_box_actions(action_space: gym.Space, agent: str) -> None:
    """Offline learners normalise dataset actions into [-1, 1]^d: a bounded one-dimensional Box is needed."""
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise ValueError(f"agent {agent} needs a one-dimensional continuous (Box) action space; got {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"agent {agent} needs finite action bounds; got {action_space}")


class ActionScaler:
    """Env-unit actions <-> the normalised box [-1, 1]^d the networks see."""

    def __init__(self, action_space: gym.spaces.Box, device: torch.device) -> None:
        low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device)
        self.center, self.scale = (high + low) / 2, (high - low) / 2

    def normalise(self, action: torch.Tensor) -> torch.Tensor:
        return ((action.float() - self.center) / self.scale).clamp(-1.0, 1.0)

    def to_env(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.center + self.scale * normalised.clamp(-1.0, 1.0)


@dataclass
class IQLConfig:
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    expectile: float = 0.9
    temperature: float = 10.0  # AWR's beta (the HILP code's skill_temperature; IQL's paper uses 3-10)
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 512, 512])
    layer_norm: bool = True  # value and critics (the policy never has it, as in the reference code)
    encoder: str = "auto"


class IQL:
    """Value V(s, c), twin critics Q_i(s, a, c) with target copies, and an AWR Gaussian policy pi(a | s, c).

    ``context_dim`` > 0 makes every network take ``batch["context"]``."""

    def __init__(self, cfg: IQLConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: torch.device | str = "cpu", context_dim: int = 0, name: str = "iql") -> None:
        check_box_actions(action_space, name)
        if not 0.0 < cfg.expectile < 1.0:
            raise ValueError(f"agent {name} needs 0 < expectile < 1; got {cfg.expectile}")
        self.cfg = cfg
        self.device = torch.device(device)
        self.actions = ActionScaler(action_space, self.device)
        action_dim = int(np.prod(action_space.shape))

        def encoder() -> tuple[nn.Module, int]:
            return make_encoder(observation_space, cfg.encoder)  # one encoder per network

        hidden, ln = cfg.hidden_sizes, cfg.layer_norm
        self.value = ValueNetwork(*encoder(), context_dim, hidden, ln, nn.GELU).to(self.device)
        self.critics = nn.ModuleList(
            [QNetwork(*encoder(), context_dim, action_dim, hidden, ln, nn.GELU) for _ in range(2)]).to(self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor = GaussianActor(*encoder(), context_dim, action_dim, hidden).to(self.device)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)

    # -- acting -------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor, context: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """Actions in env units: the Gaussian's mean when ``deterministic``, else a sample, clipped to the box."""
        dist = self.actor(obs, context)
        return self.actions.to_env(dist.mean if deterministic else dist.sample())

    # -- losses and updates ---------------------------------------------------------------------------

    def losses(self, batch: dict[str, torch.Tensor], reward: torch.Tensor | None = None,
               done: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """(L_V, L_Q, L_pi, metrics), all at the current parameters. ``reward`` / ``done`` replace
        ``batch["reward"]`` / ``batch["terminated"]`` (intrinsic rewards; HILP's skill rewards never stop
        bootstrapping)."""
        context = batch.get("context")
        reward = batch["reward"] if reward is None else reward
        done = batch["terminated"] if done is None else done
        obs, n = batch["obs"], len(batch["obs"])
        action = self.actions.normalise(batch["action"])
        with torch.no_grad():
            q_target = torch.min(*(critic(obs, action, context) for critic in self.critic_targets))
        # V(s) and V(s') in one pass; only V(s) is trained (the critics' target uses it without gradient)
        both = None if context is None else torch.cat([context, context])
        v, next_v = self.value(torch.cat([obs, batch["next_obs"]]), both).split(n)
        value_loss = expectile_loss(q_target - v, self.cfg.expectile).mean()

        target = reward + self.cfg.gamma * (1.0 - done.float()) * next_v.detach()
        q1, q2 = (critic(obs, action, context) for critic in self.critics)
        critic_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()

        adv = q_target - v.detach()
        weight = torch.exp(adv * self.cfg.temperature).clamp(max=MAX_AWR_WEIGHT)
        log_prob = self.actor.log_prob(obs, action, context)
        actor_loss = -(weight * log_prob).mean()
        metrics = {"value_loss": value_loss.item(), "v": v.mean().item(), "critic_loss": critic_loss.item(),
                   "q": q1.mean().item(), "q_target": target.mean().item(), "actor_loss": actor_loss.item(),
                   "adv": adv.mean().item(), "bc_log_prob": log_prob.mean().item()}
        return value_loss, critic_loss, actor_loss, metrics

    @torch.no_grad()
    def update_targets(self) -> None:
        for target, online in zip(self.critic_targets.parameters(), self.critics.parameters()):
            target.lerp_(online, self.cfg.tau)

    def update(self, batch: dict[str, torch.Tensor], reward: torch.Tensor | None = None,
               done: torch.Tensor | None = None) -> dict[str, float]:
        """One IQL gradient step of V, the critics and the policy (losses at the same parameters), then the
        target critics."""
        value_loss, critic_loss, actor_loss, metrics = self.losses(batch, reward, done)
        optimizers = (self.value_optimizer, self.critic_optimizer, self.actor_optimizer)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (value_loss + critic_loss + actor_loss).backward()  # disjoint parameters: one backward serves all three
        for optimizer in optimizers:
            optimizer.step()
        self.update_targets()
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    MODULES = ("value", "critics", "critic_targets", "actor", "value_optimizer", "critic_optimizer", "actor_optimizer")

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).state_dict() for name in self.MODULES}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.MODULES:
            getattr(self, name).load_state_dict(state[name])


# ---------------------------------------------------------------------------------------------------
# Sampling from a dataset


class OfflineData:
    """A dataset's transitions as NumPy arrays, with uniform batches and goal relabelling.

    ``dataset`` has the fields of ``envs.datasets.TransitionDataset`` (observations, actions, rewards,
    terminations, next_observations, episode_ids, with the transitions of an episode contiguous and in order)."""

    def __init__(self, dataset: Any, device: torch.device | str = "cpu") -> None:
        if len(dataset.rewards) == 0:
            raise ValueError("the dataset holds no transitions")
        self.device = torch.device(device)
        self.observations = np.asarray(dataset.observations)
        self.next_observations = np.asarray(dataset.next_observations)
        self.actions = np.asarray(dataset.actions, dtype=np.float32)
        self.rewards = np.asarray(dataset.rewards, dtype=np.float32)
        self.terminations = np.asarray(dataset.terminations, dtype=bool)
        ids = np.asarray(dataset.episode_ids)
        last = np.flatnonzero(np.append(ids[1:] != ids[:-1], True))
        self.episode_end = np.repeat(last, np.diff(np.append(-1, last)))  # index of each episode's last transition

    def __len__(self) -> int:
        return len(self.rewards)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=self.device)

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(len(self), size=n)

    def transitions(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch ``agents.iql`` / ``agents.sac`` learners read, for the given rows."""
        return {"obs": self.tensor(self.observations[index]), "action": self.tensor(self.actions[index]),
                "reward": self.tensor(self.rewards[index]), "next_obs": self.tensor(self.next_observations[index]),
                "terminated": self.tensor(self.terminations[index])}

    def future_indices(self, index: np.ndarray, rng: np.random.Generator, gamma: float | None) -> np.ndarray:
        """A later row of the same episode for each row: index + k with k ~ Geometric(1 - gamma) (k >= 1, the
        discounted state occupancy), or uniform over the rest of the episode when ``gamma`` is None; cut at
        the episode's last transition."""
        end = self.episode_end[index]
        if gamma is None:
            return rng.integers(np.minimum(index + 1, end), end + 1)
        offset = rng.geometric(1.0 - gamma, size=len(index))
        return np.minimum(index + offset, end)

    def goal_indices(self, index: np.ndarray, rng: np.random.Generator, p_trajgoal: float, p_randomgoal: float,
                     gamma: float | None = None) -> np.ndarray:
        """Goal rows: a later row of the same episode with probability ``p_trajgoal``, a uniformly random row
        with ``p_randomgoal``, the row itself with the rest."""
        if p_trajgoal < 0 or p_randomgoal < 0 or p_trajgoal + p_randomgoal > 1 + 1e-9:
            raise ValueError(f"goal probabilities must be >= 0 and sum to <= 1; got {p_trajgoal}, {p_randomgoal}")
        u = rng.random(len(index))
        goals = np.where(u < p_trajgoal, self.future_indices(index, rng, gamma), index)
        return np.where((u >= p_trajgoal) & (u < p_trajgoal + p_randomgoal), self.sample_indices(len(index), rng), goals)

