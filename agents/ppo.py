"""Proximal Policy Optimisation (Schulman et al. 2017) with GAE: the suite's on-policy learner for discrete
and continuous actions, flat or image observations. Curricula (PLR, PAIRED-style teachers) and
Adversarial Surprise train their students with it.

Two layers, as for SAC:

* ``PPO``, the core: an actor-critic network, its optimiser, the losses (``clipped_surrogate_loss``,
  ``clipped_value_loss``) and ``update(rollout)``, which computes GAE and runs ``n_epochs`` of shuffled
  minibatch steps on the rows of a ``RolloutBuffer`` that it owns. Methods with several policies own
  several cores: Adversarial Surprise's two policies take turns inside one episode and write one rollout,
  PAIRED's protagonist, antagonist and adversary each learn from their own rows. ``act_by_owner`` acts
  with the core that owns each env's row and ``record_step`` stores a vector step with each row's
  owner, asking the owner's core for the V(s') the buffer needs.
* ``PPOAgent``, the runner-facing agent (``agents.base``): one core (owner 0), one rollout of ``n_steps``
  vector steps, an update whenever it is full.

Rows owned by a policy. Every rollout row carries the id of the policy that chose its action. A core
learns only from its own rows (the losses, the advantage normalisation and the lr schedule's step count
see nothing else), and its GAE runs along its own rows: in an env where policies take turns, the
successor of its last row of a turn is its first row of its next turn in the same episode, one discount
step away, and the lambda-sum continues there. This is how the Adversarial Surprise authors' code treats
turns: each agent's steps go to its own buffer, in order, and its advantage at the end of a turn
bootstraps from its own value of the first state of its next turn (Explore is then paid, on that last
row, minus the surprise Control collected in between). The other policy's steps are part of its
environment. Episode ends cut every chain. When a policy does not act again before the episode or the
rollout ends: a termination (on any row) means no bootstrap; otherwise (a truncation, a lost episode,
or the rollout's end) it bootstraps from its own V of the state its last action led to, the one it handed
over. That state is trained on by the other policy, so this V is an extrapolation; the authors collect
whole episodes per update, where this case never arises, and so should methods that can (see
``agents.buffers.owned_gae`` for the exact rule).

Pairing ``act`` and ``observe``. The runner calls ``act(obs)`` and then ``observe(batch)`` for the
step. A stochastic ``act`` records, for each row it was called on, the observation, the env action it
returned and what the behaviour policy computed (the sampled, unclipped action, log pi(a|s), V(s)).
``observe`` consumes that record: rows whose observation and env action equal the recorded ones take
the recorded values, other rows (actions chosen elsewhere, or a record overwritten by another call)
have log pi and V evaluated now for the action given, which is exact because the policy changes only at
updates (a Box action clipped to its bounds is then evaluated at the clipped value). Calls that must not
touch the record pass ``deterministic=True`` (never recorded) or ``record=False``; a stochastic
evaluation call that does record in between can therefore cost a recomputation, never wrong numbers.

After ``n_steps`` vector steps ``observe`` updates and returns the metrics, leaving the per-env,
per-step advantages of that rollout in ``last_rollout_stats`` for teachers that score levels.

Evaluation-only episodes. Robust PLR and DRED play new levels once to score them and must not learn from
them (Jiang et al. 2021, "no exploratory gradient updates"). ``set_learning_mask(mask)`` says, per env,
whether the transitions collected from now on may enter the losses; the runner's curriculum driver sets
it when an episode starts. Masked rows stay in the rollout: GAE runs over them (their advantages are the
scores) but the policy, value and entropy losses and the advantage normalisation only see the others. A
rollout with no learnable row makes no gradient step at all. The reference code (dcd) decides this per
rollout, all envs replaying or all exploring; a per-episode mask is the same rule for a runner whose envs
start episodes at different times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import Agent, AgentConfig, Transition
from agents.buffers import RolloutBuffer, RolloutStats
from agents.nets import ActorCritic


@dataclass
class PPOConfig(AgentConfig):
    name: str = "ppo"
    lr: float = 2.5e-4
    n_steps: int = 128  # vector steps per rollout (batch = n_steps * num_envs transitions); PPOAgent's, a core's owner sizes its own
    n_epochs: int = 4
    n_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2  # epsilon of the clipped ratio (and of the clipped value loss)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    anneal_lr: bool = False  # decay lr linearly to 0 over anneal_lr_steps env steps
    anneal_lr_steps: int | None = None  # env steps summed over envs (a core counts its own rows), usually the run's `steps`
    normalize_advantages: bool = True  # per minibatch
    clip_vloss: bool = True
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    target_kl: float | None = None  # stop the epochs early once the approximate KL exceeds it
    encoder: str = "auto"  # observation encoder, see agents.nets.make_encoder


def clipped_surrogate_loss(logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                           clip_coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's policy loss -E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)] with rho = pi(a|s) / pi_old(a|s).

    Also returns the approximate KL(pi_old || pi), estimated as E[(rho - 1) - log rho] (unbiased and
    non-negative), and the fraction of samples whose ratio was clipped."""
    log_ratio = logprob - old_logprob
    ratio = log_ratio.exp()
    loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return loss, approx_kl, clipfrac


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip_coef: float | None) -> torch.Tensor:
    """1/2 E[(V - R)^2]; with ``clip_coef`` the pessimistic max with the error of a value kept within
    clip_coef of the behaviour-time value (as PPO's reference implementation does)."""
    loss = (values - returns) ** 2
    if clip_coef is not None:
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss.mean()


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is a perfect value function, 0 no better than a constant."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


@dataclass
class Behaviour:
    """What the behaviour policy computed for a batch of rows."""

    env_action: np.ndarray  # the array handed to the env (clipped to a Box)
    action: np.ndarray  # the sampled action (unclipped): log pi is its density
    logprob: np.ndarray
    value: np.ndarray


class PPO:
    """The PPO learner of one policy: actor-critic, optimiser, losses and updates on its rows of a rollout.

    ``owner`` is the id its rows carry in a ``RolloutBuffer``; ``update`` ignores every other row."""

    def __init__(self, cfg: PPOConfig, observation_space: gym.Space, action_space: gym.Space,
                 device: torch.device | str = "cpu", owner: int = 0) -> None:
        if cfg.anneal_lr and not cfg.anneal_lr_steps:
            raise ValueError(f"agent {cfg.name}: anneal_lr needs anneal_lr_steps (env steps to decay over)")
        if cfg.n_epochs < 1 or cfg.n_minibatches < 1:
            raise ValueError(f"agent {cfg.name} needs n_epochs and n_minibatches >= 1; got {cfg.n_epochs}, "
                             f"{cfg.n_minibatches}")
        self.cfg, self.owner, self.action_space = cfg, int(owner), action_space
        self.device = torch.device(device)
        self.policy = ActorCritic(observation_space, action_space, cfg.hidden_sizes, cfg.encoder).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.updates = 0  # rollouts consumed, learnt from or not
        self.env_steps = 0  # rows of its own consumed (the lr schedule's clock)
        self.last_rollout_stats: RolloutStats | None = None

    # -- acting -------------------------------------------------------------------------------------

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> Behaviour:
        """Sample (or with ``deterministic`` take the mode of) pi(. | s) for a batch of observations."""
        dist, value = self.policy(self._tensor(obs))
        action = dist.mode if deterministic else dist.sample()
        logprob = dist.log_prob(action)
        sampled = action.cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            env_action = np.clip(sampled, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        else:
            env_action = sampled
        return Behaviour(env_action, sampled, logprob.cpu().numpy(), value.cpu().numpy())

    @torch.no_grad()
    def evaluate(self, obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log pi(a|s), V(s)) for given observations and actions."""
        dist, value = self.policy(self._tensor(obs))
        return dist.log_prob(self._tensor(action)).cpu().numpy(), value.cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.value(self._tensor(obs)).cpu().numpy()

    # -- learning -----------------------------------------------------------------------------------

    def update(self, rollout: RolloutBuffer) -> dict[str, float]:
        """GAE along this policy's rows of a full rollout, then ``n_epochs`` passes of shuffled minibatch
        gradient steps over those of its rows that may be learnt from. The stats of the rollout (its
        advantages, other owners' rows at 0) are left in ``last_rollout_stats``. Returns the losses'
        means, or {} when no row could be learnt from (no gradient step then)."""
        cfg = self.cfg
        stats = rollout.compute_advantages(cfg.gamma, cfg.gae_lambda, self.owner, self.value)
        self.last_rollout_stats = stats
        rows = stats.learn.reshape(-1)

        def flat(array: np.ndarray) -> torch.Tensor:
            """[T, N, ...] -> [T * N, ...] rows that are learnt from, on the device."""
            return torch.as_tensor(array.reshape(-1, *array.shape[2:])[rows], device=self.device)

        obs, actions = flat(rollout.obs), flat(rollout.actions)
        old_logprobs, old_values = flat(rollout.logprobs), flat(rollout.values)
        advantages, returns = flat(stats.advantages), flat(stats.returns)
        batch_size = len(obs)
        if cfg.anneal_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * max(0.0, 1.0 - self.env_steps / cfg.anneal_lr_steps)
        self.updates += 1
        self.env_steps += int(stats.owned.sum())
        if batch_size == 0:
            return {}

        minibatch_size = math.ceil(batch_size / cfg.n_minibatches)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clipfrac": 0.0}
        steps = 0
        for epoch in range(cfg.n_epochs):
            epoch_kl = []
            for index in torch.randperm(batch_size, device=self.device).split(minibatch_size):
                dist, values = self.policy(obs[index])
                logprob, entropy = dist.log_prob(actions[index]), dist.entropy().mean()
                adv = advantages[index]
                if cfg.normalize_advantages and len(index) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss, approx_kl, clipfrac = clipped_surrogate_loss(logprob, old_logprobs[index], adv, cfg.clip_coef)
                value_loss = clipped_value_loss(values, old_values[index], returns[index],
                                                cfg.clip_coef if cfg.clip_vloss else None)
                loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for key, val in (("policy_loss", policy_loss), ("value_loss", value_loss), ("entropy", entropy),
                                 ("clipfrac", clipfrac)):
                    totals[key] += val.item()
                epoch_kl.append(approx_kl.item())
                steps += 1
            if cfg.target_kl is not None and np.mean(epoch_kl) > cfg.target_kl:
                break
        metrics = {key: total / steps for key, total in totals.items()}
        metrics.update(
            approx_kl=float(np.mean(epoch_kl)),
            explained_variance=explained_variance(old_values.cpu().numpy(), returns.cpu().numpy()),
            epochs=float(epoch + 1),
            lr=self.optimizer.param_groups[0]["lr"],
            updates=float(self.updates),
        )
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """``env_steps`` may be absent (states written before it): the caller sets it then."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.env_steps = int(state.get("env_steps", 0))


def _owners(owner: np.ndarray | int, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(owner, dtype=np.int64), (n,))


def _cores_by_owner(cores: Sequence[PPO], owner: np.ndarray) -> dict[int, PPO]:
    by_owner = {core.owner: core for core in cores}
    known = (owner == cores[0].owner).all() if len(by_owner) == 1 else np.isin(owner, list(by_owner)).all()
    if not known:
        unknown = sorted(set(np.unique(owner).tolist()) - by_owner.keys())
        raise ValueError(f"rows owned by policies {unknown} but the cores own {sorted(by_owner)}")
    return by_owner


def act_by_owner(cores: Sequence[PPO], obs: np.ndarray, owner: np.ndarray | int,
                 deterministic: bool = False) -> Behaviour:
    """Each env's row acted on by the core whose ``owner`` id the row has (policies taking turns, or
    students sharing a vector env)."""
    owner = _owners(owner, len(obs))
    parts = {i: core.act(np.asarray(obs)[owner == i], deterministic)
             for i, core in _cores_by_owner(cores, owner).items() if (owner == i).any()}
    first = next(iter(parts.values()))

    def gather(name: str) -> np.ndarray:
        out = np.empty((len(obs), *getattr(first, name).shape[1:]), dtype=getattr(first, name).dtype)
        for i, part in parts.items():
            out[owner == i] = getattr(part, name)
        return out

    return Behaviour(gather("env_action"), gather("action"), gather("logprob"), gather("value"))


def record_step(rollout: RolloutBuffer, cores: Sequence[PPO], batch: Transition, action: np.ndarray,
                logprob: np.ndarray, value: np.ndarray, owner: np.ndarray | int = 0,
                learn: np.ndarray | None = None) -> None:
    """Store one vector step in ``rollout``, each row owned by ``owner`` (per row or one for all), with the
    behaviour's (sampled action, log pi, V); V(s') where the buffer needs it is asked of the row's owner."""
    owner = _owners(owner, len(batch.reward))
    needs = rollout.needs_next_value(batch)
    next_value = np.zeros(len(owner), dtype=np.float32)
    for i, core in _cores_by_owner(cores, owner).items():
        rows = needs & (owner == i)
        if rows.any():
            next_value[rows] = core.value(np.asarray(batch.next_obs)[rows])
    rollout.add(batch, action, logprob, value, next_value, learn, owner)


@dataclass
class _Pending(Behaviour):
    """The record ``act`` leaves for ``observe``: its rows' observations and behaviour outputs."""

    obs: np.ndarray


def _rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row (leading axis), whether two arrays hold the same values (all False if shapes differ)."""
    if a.shape != b.shape:
        return np.zeros(len(b), bool)
    return (a.reshape(len(a), -1) == b.reshape(len(b), -1)).all(axis=1)


class PPOAgent(Agent):
    default_num_envs: ClassVar[int] = 8

    def __init__(self, cfg: PPOConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        if cfg.n_steps < 1 or cfg.n_epochs < 1 or cfg.n_minibatches < 1:
            raise ValueError(f"agent {cfg.name} needs n_steps, n_epochs and n_minibatches >= 1; "
                             f"got {cfg.n_steps}, {cfg.n_epochs}, {cfg.n_minibatches}")
        self.core = PPO(cfg, observation_space, action_space, device)
        self.rollout = RolloutBuffer(cfg.n_steps, num_envs, observation_space, action_space)
        self._pending: _Pending | None = None
        # Per env: may the transitions collected from now on enter the losses? None = always (no curriculum).
        self.learning_mask: np.ndarray | None = None

    @property
    def policy(self) -> ActorCritic:
        return self.core.policy

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.core.optimizer

    @property
    def updates(self) -> int:
        return self.core.updates

    @property
    def last_rollout_stats(self) -> RolloutStats | None:
        return self.core.last_rollout_stats

    def set_learning_mask(self, mask: np.ndarray) -> None:
        """Per env, whether the steps collected from now on are learnt from (False: GAE only, no gradient)."""
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.size != self.num_envs:
            raise ValueError(f"learning mask has {mask.size} entries for {self.num_envs} envs")
        self.learning_mask = mask.copy()

    # -- acting -------------------------------------------------------------------------------------

    def act(self, obs: np.ndarray, deterministic: bool = False, *, record: bool | None = None) -> np.ndarray:
        """Actions for a batch of observations. ``record`` (default: when sampling, not ``deterministic``)
        keeps what the behaviour policy computed for these rows for the next ``observe``."""
        behaviour = self.core.act(obs, deterministic)
        if (not deterministic) if record is None else record:
            self._pending = _Pending(behaviour.env_action, behaviour.action, behaviour.logprob, behaviour.value,
                                     np.array(obs, copy=True))
        return behaviour.env_action

    def _behaviour(self, batch: Transition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sampled action, log pi_old(a|s), V(s)) of this step: from the record ``act`` left for the rows
        whose observation and env action it holds, evaluated now for the others."""
        pending, self._pending = self._pending, None
        obs, env_action = np.asarray(batch.obs), np.asarray(batch.action)
        fresh = np.ones(len(env_action), bool)
        if pending is not None:
            fresh = ~(_rows_equal(pending.obs, obs) & _rows_equal(pending.env_action, env_action))
        if not fresh.any():
            return pending.action, pending.logprob, pending.value
        logprob, value = self.core.evaluate(obs[fresh], env_action[fresh])
        if fresh.all():
            return env_action, logprob, value
        action, recorded_logprob, recorded_value = pending.action.copy(), pending.logprob.copy(), pending.value.copy()
        action[fresh], recorded_logprob[fresh], recorded_value[fresh] = env_action[fresh], logprob, value
        return action, recorded_logprob, recorded_value

    # -- collecting ---------------------------------------------------------------------------------

    def observe(self, batch: Transition) -> dict[str, float]:
        if len(batch.reward) != self.num_envs:
            raise ValueError(f"agent {self.cfg.name} was built for {self.num_envs} envs; got a batch of {len(batch.reward)}")
        action, logprob, value = self._behaviour(batch)
        record_step(self.rollout, [self.core], batch, action, logprob, value, learn=self.learning_mask)
        if not self.rollout.full:
            return {}
        metrics = self.update()
        self.rollout.reset()
        return metrics

    # -- learning -----------------------------------------------------------------------------------

    def update(self) -> dict[str, float]:
        """The core's update on the full rollout (every row is the agent's; a learning mask may exclude
        some from the losses, reported as ``learn_fraction``)."""
        metrics = self.core.update(self.rollout)
        if self.learning_mask is not None:
            stats = self.core.last_rollout_stats
            metrics["learn_fraction"] = float(stats.learn.sum() / max(stats.valid.sum(), 1))
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The core's state (policy, optimizer, updates, env_steps) and the rollout collected so far."""
        return {**self.core.state_dict(), "rollout": self.rollout.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.core.load_state_dict(state)
        rollout = state["rollout"]
        if "env_steps" not in state:  # written before the core counted its rows: every update was a full rollout
            envs = rollout["valid"].shape[1] if rollout["valid"].ndim == 2 else self.num_envs
            self.core.env_steps = self.core.updates * self.cfg.n_steps * envs
        if rollout["valid"].ndim == 2 and rollout["valid"].shape[1] != self.num_envs:
            # Rebuilt for another number of envs (rl-eval plays one): the policy is all that matters; the
            # half-collected rollout is training data of the other envs and is dropped.
            self.rollout.reset()
        else:
            self.rollout.load_state_dict(rollout)
        self._pending = None
