"""Transition storage: a replay buffer for off-policy learners and a rollout buffer with GAE for PPO.

Both read the runner's ``Transition`` batches (see ``agents.base``) and apply its two masks the same way:

* ``next_obs_valid`` False means the successor observation is unknown, so the step is stored as
  terminal: nothing ever bootstraps from its ``next_obs``;
* ``dropped`` rows are not transitions (a crashed worker's lost episode) and are never learnt from.

Arrays keep the env's dtypes (uint8 images stay uint8, four times smaller than float32); conversion
to float happens in the networks' encoders, on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import Transition


def _masks(batch: Transition) -> tuple[np.ndarray, np.ndarray]:
    """(keep, no_bootstrap) per row: ``keep`` drops rows that are not transitions; ``no_bootstrap`` is
    True where the return must not continue past the successor (termination or an unknown successor)."""
    n = len(batch.reward)
    keep = np.ones(n, bool) if batch.dropped is None else ~np.asarray(batch.dropped, bool)
    valid = np.ones(n, bool) if batch.next_obs_valid is None else np.asarray(batch.next_obs_valid, bool)
    return keep, np.asarray(batch.terminated, bool) | ~valid


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor that owns a copy (a view would make ``torch.save`` write the whole backing array)."""
    return torch.from_numpy(np.ascontiguousarray(array).copy())


class ReplayBuffer:
    """A FIFO ring of transitions with uniform sampling.

    Fields are named arrays of fixed per-row shape and dtype. ``for_spaces`` builds the standard ones:
    ``obs``, ``action``, ``reward``, ``next_obs``, ``terminated`` (True: do not bootstrap from
    ``next_obs``); methods that condition on more (a skill ``z`` per transition) add their own fields
    through ``extra_fields`` and pass their values to ``add``.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], Any]],
                 device: torch.device | str = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"replay buffer capacity must be positive; got {capacity}")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        # np.zeros is lazily committed by the OS: a large capacity costs memory only as it fills.
        self.data = {name: np.zeros((self.capacity, *shape), dtype=dtype) for name, (shape, dtype) in fields.items()}
        self.pos = 0  # next row to write
        self.size = 0  # rows filled

    @classmethod
    def for_spaces(cls, capacity: int, observation_space: gym.Space, action_space: gym.Space,
                   device: torch.device | str = "cpu",
                   extra_fields: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> ReplayBuffer:
        obs = (tuple(observation_space.shape), observation_space.dtype)
        fields = {
            "obs": obs,
            "action": (tuple(action_space.shape), np.float32 if action_space.dtype.kind == "f" else np.int64),
            "reward": ((), np.float32),
            "next_obs": obs,
            "terminated": ((), np.bool_),
            **(extra_fields or {}),
        }
        return cls(capacity, fields, device)

    def __len__(self) -> int:
        return self.size

    def add_rows(self, **rows: np.ndarray) -> None:
        """Append rows (a leading batch axis on every field; every field must be given)."""
        if rows.keys() != self.data.keys():
            raise ValueError(f"replay buffer add_rows needs fields {sorted(self.data)}; got {sorted(rows)}")
        n = len(next(iter(rows.values())))
        index = (self.pos + np.arange(n)) % self.capacity
        for name, value in rows.items():
            self.data[name][index] = value
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def add(self, batch: Transition, **extra: np.ndarray) -> None:
        """Store one vector step of the runner, skipping dropped rows and marking rows whose successor is
        unknown as terminal. ``extra`` holds the values of extra fields for every row of the batch."""
        keep, no_bootstrap = _masks(batch)
        rows = {
            "obs": batch.obs, "action": batch.action, "reward": batch.reward,
            "next_obs": batch.next_obs, "terminated": no_bootstrap, **extra,
        }
        self.add_rows(**{name: np.asarray(value)[keep] for name, value in rows.items()})

    def sample(self, batch_size: int, generator: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` rows drawn uniformly with replacement, as tensors on the buffer's device."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = generator.integers(0, self.size, size=batch_size)
        return {name: torch.as_tensor(array[index], device=self.device) for name, array in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """Only the filled rows, as tensors (a fresh buffer with 1M rows of capacity saves as nothing)."""
        return {"pos": self.pos, "size": self.size,
                "data": {name: _to_tensor(array[: self.size]) for name, array in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"replay buffer state holds {size} rows, more than this buffer's capacity {self.capacity}")
        if state["data"].keys() != self.data.keys():
            raise ValueError(f"replay buffer state has fields {sorted(state['data'])}; expected {sorted(self.data)}")
        for name, tensor in state["data"].items():
            self.data[name][:size] = tensor.cpu().numpy()
        self.pos, self.size = int(state["pos"]), size


def owned_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
              episode_end: np.ndarray, valid: np.ndarray, mine: np.ndarray,
              handover_value: Callable[[np.ndarray], np.ndarray], gamma: float,
              gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016) over the rows ``mine`` of a [T, N] rollout.

    A policy's rows in one env form its own chain: the successor of its row t is its next row u > t in the
    same env and episode (u = t + 1 unless another policy acted in between), so
    delta_t = r_t + gamma * V(s_u) - V(s_t) and A_t = delta_t + gamma * lambda * A_u; the other policy's steps
    in between are part of the environment it sees, one transition long. Where the chain stops:

    * row t ends an episode (``episode_end``): delta_t = r_t + gamma * (1 - terminated_t) * next_values_t
      - V(s_t) (a truncation bootstraps from V(s'), a termination or unknown successor does not);
    * the policy does not act again in this env before the episode or the rollout ends: no bootstrap if the
      episode is terminated first, else from its own value of the state s'_t its last action led to
      (``next_values_t`` at the rollout's last row, ``values_{t+1}`` when row t + 1 is its own, dropped row,
      otherwise ``handover_value``).

    ``handover_value(rows)`` gets the boolean [T, N] mask of rows whose s'_t is the observation of row t + 1,
    where another policy acts, and returns the owner's V of those observations in row-major order.
    Returns (advantages, returns = advantages + values); rows not ``mine`` (or not valid) get advantage 0."""
    steps, num_envs = rewards.shape
    envs = np.arange(num_envs)
    # Pass 1 (backwards): each row's next own row in the same episode (-1: none), and whether the first
    # episode end after it is a real termination.
    link = np.full((steps, num_envs), -1)
    ends_terminal = np.zeros((steps, num_envs), bool)
    following, terminal = np.full(num_envs, -1), np.zeros(num_envs, bool)
    for t in reversed(range(steps)):
        link[t] = np.where(episode_end[t], -1, following)
        ends_terminal[t] = terminal
        following = np.where(mine[t] & valid[t], t, np.where(episode_end[t], -1, following))
        terminal = np.where(episode_end[t], terminated[t] & valid[t], terminal)

    # V of each row's successor in its owner's chain (zeroed below where it must not be bootstrapped from).
    successor = np.where(link >= 0, values[np.maximum(link, 0), envs], 0.0).astype(np.float32)
    successor[episode_end] = next_values[episode_end]
    dangling = mine & valid & ~episode_end & (link < 0) & ~ends_terminal
    successor[-1][dangling[-1]] = next_values[-1][dangling[-1]]
    own_next = np.zeros_like(dangling)
    own_next[:-1] = dangling[:-1] & mine[1:]
    successor[:-1][own_next[:-1]] = values[1:][own_next[:-1]]
    handover = np.zeros_like(dangling)
    handover[:-1] = dangling[:-1] & ~mine[1:]
    if handover.any():
        successor[handover] = handover_value(handover)
    no_bootstrap = np.where(episode_end, terminated, (link < 0) & ~dangling)

    # Pass 2 (backwards): the lambda-sums along each chain (row -1, never written, holds 0 for unlinked rows).
    delta = rewards + gamma * (1.0 - no_bootstrap) * successor - values
    counted = mine & valid
    advantages = np.zeros((steps + 1, num_envs), dtype=np.float64)
    for t in reversed(range(steps)):
        advantages[t] = np.where(counted[t], delta[t] + gamma * gae_lambda * advantages[link[t], envs], 0.0)
    advantages = advantages[:-1].astype(np.float32)
    return advantages, advantages + values


@dataclass
class RolloutStats:
    """What PPO trained on in its last update, per step and env ([n_steps, num_envs] arrays), for
    teachers that score levels by it. PLR's scores of an episode of env i are, for example, the mean of
    ``max(advantages, 0)`` (positive value loss) or of ``|advantages|`` over its steps; episodes end
    after the rows where ``episode_end`` is True. Rows with ``valid`` False were not transitions; rows with
    ``learn`` False were transitions that PPO computed advantages for but took no gradient from (episodes a
    teacher asked to be played for evaluation only, see ``PPOAgent.set_learning_mask``, and rows another
    policy owns). ``owned`` marks the rows of the policy these advantages are for (all rows of a
    single-policy rollout); the others have advantage 0."""

    rewards: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    valid: np.ndarray
    learn: np.ndarray
    owned: np.ndarray | None = None


class RolloutBuffer:
    """``n_steps`` vector steps of ``num_envs`` envs, used once.

    Besides the transition, each step records what the behaviour policy computed (log pi(a|s), V(s))
    and V(s') where the successor is not the next row's observation (a truncated episode's final
    observation, or any successor at the last step); elsewhere V(s'_t) is V(s_{t+1}), already stored.
    ``learn`` marks the rows the losses may use: GAE runs over every transition, gradients only over these.
    ``owner`` is the id of the policy that acted on each row (0 when one policy collects everything):
    methods whose policies take turns in one env, or share a rollout, give each row to the policy that
    chose its action, and each policy computes its advantages and learns from its own rows only
    (``compute_advantages(owner=...)``, see ``owned_gae``)."""

    _FIELDS = ("obs", "actions", "logprobs", "values", "rewards", "next_values", "terminated", "episode_end", "valid",
               "learn", "owner")

    def __init__(self, n_steps: int, num_envs: int, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.n_steps, self.num_envs = n_steps, num_envs
        discrete = isinstance(action_space, gym.spaces.Discrete)

        def zeros(shape=(), dtype=np.float32) -> np.ndarray:
            return np.zeros((n_steps, num_envs, *shape), dtype=dtype)

        self.obs = zeros(observation_space.shape, observation_space.dtype)
        self.actions = zeros((), np.int64) if discrete else zeros(action_space.shape, np.float32)
        self.logprobs, self.values, self.rewards, self.next_values = zeros(), zeros(), zeros(), zeros()
        self.terminated = zeros(dtype=np.bool_)  # no bootstrap: termination or unknown successor
        self.episode_end = zeros(dtype=np.bool_)  # terminated or truncated
        self.valid = zeros(dtype=np.bool_)  # False: a dropped row, not a transition
        self.learn = zeros(dtype=np.bool_)  # False: a transition excluded from the losses (evaluation only)
        self.owner = zeros(dtype=np.int64)  # id of the policy that acted
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step == self.n_steps

    def needs_next_value(self, batch: Transition) -> np.ndarray:
        """Rows of ``batch`` (the step about to be added) whose V(s') must be computed now, by the policy
        that owns the row: the successor is real and bootstrapped from, and it is not the next row's
        observation."""
        keep, no_bootstrap = _masks(batch)
        last = self.step == self.n_steps - 1
        return keep & ~no_bootstrap & (np.asarray(batch.truncated, bool) | last)

    def add(self, batch: Transition, action: np.ndarray, logprob: np.ndarray, value: np.ndarray,
            next_value: np.ndarray, learn: np.ndarray | None = None, owner: np.ndarray | int = 0) -> None:
        """Store one vector step. ``action`` is the sampled (unclipped) action, ``next_value`` V(s') where
        ``needs_next_value`` said so (ignored elsewhere); ``learn`` (default all) the rows losses may use;
        ``owner`` the id of the policy that acted, per row or one for all."""
        if self.full:
            raise RuntimeError("rollout buffer is full; compute advantages and reset it first")
        keep, no_bootstrap = _masks(batch)
        t = self.step
        self.obs[t] = batch.obs
        self.actions[t] = action
        self.logprobs[t], self.values[t], self.next_values[t] = logprob, value, next_value
        self.rewards[t] = np.where(keep, batch.reward, 0.0)
        self.terminated[t] = no_bootstrap | ~keep
        self.episode_end[t] = no_bootstrap | np.asarray(batch.truncated, bool) | ~keep
        self.valid[t] = keep
        self.learn[t] = keep if learn is None else keep & np.asarray(learn, bool)
        self.owner[t] = owner
        self.step += 1

    def compute_advantages(self, gamma: float, gae_lambda: float, owner: int | None = None,
                           value_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> RolloutStats:
        """GAE over the full rollout for the rows of policy ``owner`` (None: every row, one policy), with
        its chains cut at changes of owner as ``owned_gae`` defines. ``value_fn`` is that policy's V on a
        batch of observations: needed where its last row before the rollout's end hands over to another
        policy mid-episode (it bootstraps from its own V of the observation it handed over)."""
        mine = np.ones_like(self.valid) if owner is None else self.owner == owner

        def handover_value(rows: np.ndarray) -> np.ndarray:
            if value_fn is None:
                raise ValueError(f"rows of policy {owner} hand over to another policy before the rollout ends; "
                                 "compute_advantages needs its value_fn to bootstrap them")
            return value_fn(self.obs[1:][rows[:-1]])

        advantages, returns = owned_gae(self.rewards, self.values, self.next_values, self.terminated,
                                        self.episode_end, self.valid, mine, handover_value, gamma, gae_lambda)
        return RolloutStats(self.rewards.copy(), self.values.copy(), advantages, returns, self.terminated.copy(),
                            self.episode_end.copy(), self.valid.copy(), self.learn & mine, mine)

    def reset(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, Any]:
        """The rows collected so far (a checkpoint taken mid-rollout resumes it)."""
        return {"step": self.step, **{name: _to_tensor(getattr(self, name)[: self.step]) for name in self._FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        for name in self._FIELDS:
            if name == "learn" and name not in state:  # checkpoints from before loss masks: every row learnt
                self.learn[: self.step] = self.valid[: self.step]
                continue
            if name == "owner" and name not in state:  # checkpoints from before owners: one policy
                self.owner[: self.step] = 0
                continue
            getattr(self, name)[: self.step] = state[name].cpu().numpy()
