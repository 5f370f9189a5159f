"""Proximal Policy Optimisation (Schulman et al. 2017) with GAE: the suite's on-policy learner for discrete
and continuous actions, flat or image observations. Curricula (PLR, PAIRED-style teachers) and
Adversarial Surprise train their students with it.

The runner drives it step by step (``agents.base``). ``act`` samples actions and remembers what the
behaviour policy computed for them (log pi(a|s), V(s)); the next ``observe`` stores that together with
the transition the env returned. So ``act`` and ``observe`` come in pairs: ``observe`` recognises its
``act`` by the action array (the runner passes the array ``act`` returned), and when the pairing is
broken (actions made elsewhere) it recomputes log pi and V for the given actions, which is exact
because the policy only changes at updates. Calls of ``act`` in between (evaluation episodes run after
an ``observe``) do no harm.

After ``n_steps`` vector steps ``observe`` computes GAE advantages and runs ``n_epochs`` of minibatch
updates of the clipped surrogate, value and entropy losses; it returns their metrics and leaves the
per-env, per-step advantages of that rollout in ``last_rollout_stats`` for teachers that score levels.

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
    n_steps: int = 128  # vector steps per rollout (batch = n_steps * num_envs transitions)
    n_epochs: int = 4
    n_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2  # epsilon of the clipped ratio (and of the clipped value loss)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    anneal_lr: bool = False  # decay lr linearly to 0 over anneal_lr_steps env steps
    anneal_lr_steps: int | None = None  # env steps summed over envs, usually the run's `steps`
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
class _Pending:
    """What ``act`` computed for the actions it returned, waiting for the matching ``observe``."""

    env_action: np.ndarray  # the array handed to the env (clipped to the Box)
    action: np.ndarray  # the sampled action (unclipped): log pi is its density
    logprob: np.ndarray
    value: np.ndarray


class PPOAgent(Agent):
    default_num_envs: ClassVar[int] = 8

    def __init__(self, cfg: PPOConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        if cfg.anneal_lr and not cfg.anneal_lr_steps:
            raise ValueError(f"agent {cfg.name}: anneal_lr needs anneal_lr_steps (env steps to decay over)")
        if cfg.n_steps < 1 or cfg.n_epochs < 1 or cfg.n_minibatches < 1:
            raise ValueError(f"agent {cfg.name} needs n_steps, n_epochs and n_minibatches >= 1; "
                             f"got {cfg.n_steps}, {cfg.n_epochs}, {cfg.n_minibatches}")
        self.policy = ActorCritic(observation_space, action_space, cfg.hidden_sizes, cfg.encoder).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.rollout = RolloutBuffer(cfg.n_steps, num_envs, observation_space, action_space)
        self.updates = 0
        self.last_rollout_stats: RolloutStats | None = None
        self._pending: _Pending | None = None
        # Per env: may the transitions collected from now on enter the losses? None = always (no curriculum).
        self.learning_mask: np.ndarray | None = None

    def set_learning_mask(self, mask: np.ndarray) -> None:
        """Per env, whether the steps collected from now on are learnt from (False: GAE only, no gradient)."""
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.size != self.num_envs:
            raise ValueError(f"learning mask has {mask.size} entries for {self.num_envs} envs")
        self.learning_mask = mask.copy()

    # -- acting -------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        dist, value = self.policy(torch.as_tensor(obs, device=self.device))
        action = dist.mode if deterministic else dist.sample()
        logprob = dist.log_prob(action)
        sampled = action.cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            env_action = np.clip(sampled, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        else:
            env_action = sampled
        self._pending = _Pending(env_action, sampled, logprob.cpu().numpy(), value.cpu().numpy())
        return env_action

    @torch.no_grad()
    def _behaviour(self, batch: Transition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(action, log pi_old(a|s), V(s)) of this step: from ``act`` when it made these actions, else
        evaluated now for the actions given."""
        pending, self._pending = self._pending, None
        if pending is not None and batch.action is pending.env_action:
            return pending.action, pending.logprob, pending.value
        dist, value = self.policy(torch.as_tensor(batch.obs, device=self.device))
        action = torch.as_tensor(batch.action, device=self.device)
        return batch.action, dist.log_prob(action).cpu().numpy(), value.cpu().numpy()

    # -- collecting ---------------------------------------------------------------------------------

    def observe(self, batch: Transition) -> dict[str, float]:
        if len(batch.reward) != self.num_envs:
            raise ValueError(f"agent {self.cfg.name} was built for {self.num_envs} envs; got a batch of {len(batch.reward)}")
        action, logprob, value = self._behaviour(batch)
        # V(s') where the successor is not the next row's observation: truncations and the rollout's end.
        needs = self.rollout.needs_next_value(batch)
        next_value = np.zeros(self.num_envs, dtype=np.float32)
        if needs.any():
            with torch.no_grad():
                next_obs = torch.as_tensor(np.asarray(batch.next_obs)[needs], device=self.device)
                next_value[needs] = self.policy.value(next_obs).cpu().numpy()
        self.rollout.add(batch, action, logprob, value, next_value, self.learning_mask)
        if not self.rollout.full:
            return {}
        metrics = self.update()
        self.rollout.reset()
        return metrics

    # -- learning -----------------------------------------------------------------------------------

    def update(self) -> dict[str, float]:
        """GAE on the full rollout, then ``n_epochs`` passes of shuffled minibatch gradient steps over the
        rows that may be learnt from (every transition unless a learning mask excluded some)."""
        cfg = self.cfg
        stats = self.rollout.compute_advantages(cfg.gamma, cfg.gae_lambda)
        self.last_rollout_stats = stats
        rows = stats.learn.reshape(-1)  # transitions (valid) that the losses may use
        extra = {} if self.learning_mask is None else {"learn_fraction": float(rows.sum() / max(stats.valid.sum(), 1))}

        def flat(array: np.ndarray) -> torch.Tensor:
            """[T, N, ...] -> [T * N, ...] rows that are learnt from, on the device."""
            return torch.as_tensor(array.reshape(-1, *array.shape[2:])[rows], device=self.device)

        obs, actions = flat(self.rollout.obs), flat(self.rollout.actions)
        old_logprobs, old_values = flat(self.rollout.logprobs), flat(self.rollout.values)
        advantages, returns = flat(stats.advantages), flat(stats.returns)
        batch_size = len(obs)
        if cfg.anneal_lr:
            done_fraction = self.updates * cfg.n_steps * self.num_envs / cfg.anneal_lr_steps
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * max(0.0, 1.0 - done_fraction)
        self.updates += 1  # rollouts consumed, learnt from or not: the lr schedule counts env steps
        if batch_size == 0:
            return extra

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
            **extra,
        )
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates, "rollout": self.rollout.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        rollout = state["rollout"]
        if rollout["valid"].ndim == 2 and rollout["valid"].shape[1] != self.num_envs:
            # Rebuilt for another number of envs (rl-eval plays one): the policy is all that matters; the
            # half-collected rollout is training data of the other envs and is dropped.
            self.rollout.reset()
        else:
            self.rollout.load_state_dict(rollout)
        self._pending = None
