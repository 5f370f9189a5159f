"""Transition storage: a replay buffer for off-policy learners and a rollout buffer with GAE for PPO.

Both read the runner's ``Transition`` batches (see ``agents.base``) and apply its two masks the same way:

* ``next_obs_valid`` False means the successor observation is unknown, so the step is stored as
  terminal: nothing ever bootstraps from its ``next_obs``;
* ``dropped`` rows are not transitions (a crashed worker's lost episode) and are never learnt from.

Arrays keep the env's dtypes (uint8 images stay uint8, four times smaller than float32); conversion
to float happens in the networks' encoders, on the device.
"""

from __future__ import annotations

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


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, no_bootstrap: np.ndarray,
                chain_break: np.ndarray, gamma: float, gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016) over a [T, N] rollout.

    ``next_values[t]`` is V of the real successor of step t. ``no_bootstrap[t]`` (termination) zeroes it:
    delta_t = r_t + gamma * (1 - no_bootstrap_t) * V(s'_t) - V(s_t). ``chain_break[t]`` (any episode end,
    and the step before a row that is not a transition) stops the lambda-sum there:
    A_t = delta_t + gamma * lambda * (1 - chain_break_t) * A_{t+1}. A truncated step therefore
    bootstraps from V(s') but does not leak advantages of the next episode. Returns (advantages,
    returns = advantages + values), the latter the value targets (TD(lambda) returns)."""
    advantages = np.zeros_like(values, dtype=np.float32)
    carry = np.zeros(values.shape[1:], dtype=np.float32)
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * (1.0 - no_bootstrap[t]) * next_values[t] - values[t]
        carry = delta + gamma * gae_lambda * (1.0 - chain_break[t]) * carry
        advantages[t] = carry
    return advantages, advantages + values


@dataclass
class RolloutStats:
    """What PPO trained on in its last update, per step and env ([n_steps, num_envs] arrays), for
    teachers that score levels by it. PLR's scores of an episode of env i are, for example, the mean of
    ``max(advantages, 0)`` (positive value loss) or of ``|advantages|`` over its steps; episodes end
    after the rows where ``episode_end`` is True. Rows with ``valid`` False were not transitions; rows with
    ``learn`` False were transitions that PPO computed advantages for but took no gradient from (episodes a
    teacher asked to be played for evaluation only, see ``PPOAgent.set_learning_mask``)."""

    rewards: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    valid: np.ndarray
    learn: np.ndarray


class RolloutBuffer:
    """``n_steps`` vector steps of ``num_envs`` envs, collected by one policy and used once.

    Besides the transition, each step records what the behaviour policy computed (log pi(a|s), V(s))
    and V(s') where the successor is not the next row's observation (a truncated episode's final
    observation, or any successor at the last step); elsewhere V(s'_t) is V(s_{t+1}), already stored.
    ``learn`` marks the rows the losses may use: GAE runs over every transition, gradients only over these."""

    _FIELDS = ("obs", "actions", "logprobs", "values", "rewards", "next_values", "terminated", "episode_end", "valid",
               "learn")

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
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step == self.n_steps

    def needs_next_value(self, batch: Transition) -> np.ndarray:
        """Rows of ``batch`` (the step about to be added) whose V(s') must be computed now: the successor
        is real and bootstrapped from, and it is not the next row's observation."""
        keep, no_bootstrap = _masks(batch)
        last = self.step == self.n_steps - 1
        return keep & ~no_bootstrap & (np.asarray(batch.truncated, bool) | last)

    def add(self, batch: Transition, action: np.ndarray, logprob: np.ndarray, value: np.ndarray,
            next_value: np.ndarray, learn: np.ndarray | None = None) -> None:
        """Store one vector step. ``action`` is the sampled (unclipped) action, ``next_value`` V(s') where
        ``needs_next_value`` said so (ignored elsewhere); ``learn`` (default all) the rows losses may use."""
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
        self.step += 1

    def compute_advantages(self, gamma: float, gae_lambda: float) -> RolloutStats:
        """GAE over the full rollout, with V(s'_t) = V(s_{t+1}) inside episodes."""
        next_values = self.next_values.copy()
        inside = ~self.episode_end[:-1]
        next_values[:-1][inside] = self.values[1:][inside]
        chain_break = self.episode_end.copy()
        chain_break[:-1] |= ~self.valid[1:]  # a dropped row's successor is unknown: stop the sum before it
        advantages, returns = compute_gae(self.rewards, self.values, next_values, self.terminated,
                                          chain_break, gamma, gae_lambda)
        advantages[~self.valid] = 0.0
        return RolloutStats(self.rewards.copy(), self.values.copy(), advantages, returns,
                            self.terminated.copy(), self.episode_end.copy(), self.valid.copy(), self.learn.copy())

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
            getattr(self, name)[: self.step] = state[name].cpu().numpy()
