"""METRA (Park, Rybkin and Levine, ICLR 2024) and the two skill-discovery baselines that share its code path,
LSD (Park et al., ICLR 2022) and DIAYN (Eysenbach et al., ICLR 2019).

The algorithm, in the paper's names. A skill z is drawn per trajectory (continuous: z ~ N(0, I) scaled to
the unit sphere; discrete: a one-hot of ``skill_dim`` skills). A representation phi: S -> R^D is trained to

    maximise  E[(phi(s') - phi(s))^T z]   subject to  ||phi(s') - phi(s)|| <= 1  for every transition,

so phi stretches along the directions the policy can travel furthest (a temporal distance), and the
policy pi(a | s, z), a SAC learner on [s, z], maximises the intrinsic reward r = (phi(s') - phi(s))^T z.
The constraint is handled by dual gradient descent with a multiplier lambda = exp(log lambda):

    phi loss     -E[r + lambda * min(epsilon, 1 - mean_i (phi(s') - phi(s))_i^2)]   (lambda held fixed)
    lambda loss   log lambda * E[min(epsilon, 1 - mean_i (phi(s') - phi(s))_i^2)]    (penalty held fixed)

epsilon (``dual_slack``, 1e-3) is a slack: transitions that satisfy the constraint by more than
epsilon stop pushing. Lambda rises while the constraint is violated on average and falls while it is
satisfied.

Choices where paper and reference code differ, and what this module does:

* Constraint form: the paper writes ||phi(s') - phi(s)|| <= 1; the authors' code uses the mean over the
  D dimensions of the squared difference, i.e. ||phi(s') - phi(s)||^2 <= D. We use the code's form (the
  published results come from it). It only rescales phi by sqrt(D): the reward's optimal directions and
  the goal prompt (which normalises phi(g) - phi(s)) are unchanged.
* Discrete skills: the policy sees the one-hot z, but the reward uses the centred one-hot
  z~ = (z - mean(z)) * D / (D - 1) (so the skills' directions sum to zero and phi cannot earn reward by
  moving all its coordinates together), as the code does; the paper does not mention it.
* Update order per gradient step, as in the code: phi, then lambda (with the penalty computed before the
  phi step), then the rewards are recomputed with the new phi, then Q, policy and alpha (``agents.sac``).
* SAC settings from the code: alpha starts at 0.01 and targets an entropy of -|A|/2; the environment's
  reward is stored but never trained on. As in the code, the skill policy acts from the first step (no
  uniform-action warm-up): ``learning_starts`` only delays the first gradient step.
* The paper's phi is a 2 x 1024 MLP trained with lr 1e-4 over hours on a GPU. The defaults here are sized
  for a CPU run on the point maze (2 x 256, lr 3e-4, one gradient step per 4 env steps after 2,000 random
  -skill steps); the reference values are one override away (``agent.phi_hidden_sizes=[1024,1024]
  agent.lr=1e-4 ...``).

Variants (``variant``), each a registry entry with its own defaults:

* ``metra``: the above.
* ``lsd``: no dual variable and no constraint term; instead phi is 1-Lipschitz by spectral normalisation of
  every layer (w.r.t. the Euclidean norm of the raw observation); same reward.
* ``diayn``: phi becomes a skill discriminator q(z | s'): logits over discrete skills, or the mean of a
  Gaussian with a learned state-independent std over continuous (unnormalised N(0, I)) skills. Reward
  r = log q(z | s') - log p(z), which is also what the discriminator maximises; no inner product, no
  unit length, no dual.

Pixel observations: phi and all SAC networks use the METRA CNN (``agents.nets.metra_cnn``) unless
``encoder`` names another one.

Contracts (``agents.base``): a ``SkillAgent`` (``skill_dim``, ``sample_skills(n, rng)``, ``act_with_skill(obs,
z, deterministic)``; the per-episode skills are ``agents.skills``'), a ``SkillRepresentation`` (``phi(obs)``) and
``GoalPrompted`` (``goal_skill(obs, goal_obs)``), driven by ``runners.skill_eval``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.base import Transition
from agents.buffers import ReplayBuffer
from agents.nets import encoder_kind_for, make_encoder, mlp
from agents.sac import SAC, SACConfig, check_continuous_actions, gradient_rounds, real_transitions
from agents.skills import SkillConditionedAgent, unit_direction

VARIANTS = ("metra", "lsd", "diayn")


@dataclass
class METRAConfig(SACConfig):
    name: str = "metra"
    variant: str = "metra"  # metra | lsd | diayn (see the module docstring)
    skill_dim: int = 2  # D: dimensions of a continuous z, or the number of discrete skills
    discrete_skills: bool = False
    phi_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])  # paper: [1024, 1024]
    phi_lr: float = 3e-4
    dual_lr: float = 3e-4
    dual_lam: float = 30.0  # initial lambda
    dual_slack: float = 1e-3  # epsilon
    # SAC, overridden for METRA's settings and a CPU-sized run (paper: lr 1e-4, 1024 units, 10k warm-up,
    # 50 gradient steps per 1,600 env steps).
    lr: float = 3e-4
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    init_alpha: float = 0.01
    learning_starts: int = 2_000
    train_freq: int = 4
    gradient_steps: int = 1
    buffer_size: int = 1_000_000


@dataclass
class LSDConfig(METRAConfig):
    name: str = "lsd"
    variant: str = "lsd"


@dataclass
class DIAYNConfig(METRAConfig):
    name: str = "diayn"
    variant: str = "diayn"
    discrete_skills: bool = True
    skill_dim: int = 8


def centred_skill(z: torch.Tensor) -> torch.Tensor:
    """z~ = (z - mean_i z_i) * D / (D - 1): a one-hot made zero-mean, its own entry scaled back to 1."""
    d = z.shape[-1]
    return (z - z.mean(dim=-1, keepdim=True)) * d / max(d - 1, 1)


def constraint_penalty(phi_s: torch.Tensor, phi_next: torch.Tensor, slack: float) -> torch.Tensor:
    """min(epsilon, 1 - mean_i (phi(s') - phi(s))_i^2): negative where the transition violates the constraint."""
    return torch.clamp(1.0 - (phi_next - phi_s).pow(2).mean(dim=-1), max=slack)


class Phi(nn.Module):
    """phi(s): an observation encoder and an MLP. LSD's version is spectrally normalised layer by layer;
    DIAYN's continuous discriminator adds a learned log std."""

    def __init__(self, observation_space: gym.Space, encoder: str, hidden_sizes: list[int], out_dim: int,
                 spectral_norm: bool, gaussian: bool) -> None:
        super().__init__()
        self.encoder, feature_dim = make_encoder(observation_space, encoder)
        self.head = mlp(feature_dim, hidden_sizes, out_dim)
        if spectral_norm:
            for module in list(self.modules()):
                for name, child in list(module.named_children()):
                    if isinstance(child, (nn.Linear, nn.Conv2d)):
                        setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        self.log_std = nn.Parameter(torch.zeros(out_dim)) if gaussian else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs))


class METRAAgent(SkillConditionedAgent):
    """Skill discovery by METRA, LSD or DIAYN, with SAC as the skill-conditioned policy learner."""

    eval_suites = ("returns", "coverage", "goal_reaching")
    report_suites = ("downstream",)

    def __init__(self, cfg: METRAConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        check_continuous_actions(action_space, cfg.name)
        if cfg.variant not in VARIANTS:
            raise ValueError(f"unknown METRA variant {cfg.variant!r}; choose one of: {', '.join(VARIANTS)}")
        if cfg.skill_dim < 1 or (cfg.discrete_skills and cfg.skill_dim < 2):
            raise ValueError(f"agent {cfg.name} needs skill_dim >= 1 (>= 2 discrete skills); got {cfg.skill_dim}")
        encoder = cfg.encoder
        if encoder == "auto" and encoder_kind_for(observation_space) in ("impala", "nature", "metra"):
            encoder = "metra"  # pixels: the paper's CNN
        action_dim = int(np.prod(action_space.shape))
        target_entropy = -action_dim / 2 if cfg.target_entropy is None else cfg.target_entropy
        self.sac = SAC(dataclasses.replace(cfg, encoder=encoder, target_entropy=target_entropy),
                       observation_space, action_space, device, context_dim=cfg.skill_dim)

        self.phi_net = Phi(observation_space, encoder, cfg.phi_hidden_sizes, cfg.skill_dim,
                           spectral_norm=cfg.variant == "lsd",
                           gaussian=cfg.variant == "diayn" and not cfg.discrete_skills).to(device)
        self.phi_optimizer = torch.optim.Adam(self.phi_net.parameters(), lr=cfg.phi_lr)
        self.log_lambda = torch.tensor(math.log(cfg.dual_lam), device=device, requires_grad=True)
        self.lambda_optimizer = torch.optim.Adam([self.log_lambda], lr=cfg.dual_lr)

        self.buffer = ReplayBuffer.for_spaces(cfg.buffer_size, observation_space, action_space, device,
                                              extra_fields={"z": ((cfg.skill_dim,), np.float32)})
        self.rng = np.random.default_rng()  # skills and replay sampling
        self.init_skills()  # z: the skill each env's current episode follows
        self.env_steps = 0
        self.updates = 0

    @property
    def dual(self) -> bool:
        return self.cfg.variant == "metra"

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lambda.detach().exp()

    # -- skills --------------------------------------------------------------------------------------

    @property
    def skill_dim(self) -> int:
        return self.cfg.skill_dim

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n skills from the prior p(z). Continuous: N(0, I), on the unit sphere unless the variant is DIAYN.
        Discrete: one-hots; n >= D draws cover every skill equally often (up to one), as the reference's
        evaluation does, and fewer draws are uniform without repeats."""
        d = self.cfg.skill_dim
        if self.cfg.discrete_skills:
            index = rng.permutation((rng.integers(d) + np.arange(n)) % d)
            return np.eye(d, dtype=np.float32)[index]
        z = rng.standard_normal((n, d))
        if self.cfg.variant != "diayn":
            z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z.astype(np.float32)

    # -- acting (``act``: each env with its episode's skill, see ``agents.skills``) -------------------

    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """pi(a | s, z) for a batch of observations and one skill per row."""
        action = self.sac.act(self._tensor(obs), self._tensor(z).float(), deterministic)
        return action.cpu().numpy().astype(self.action_space.dtype)

    # -- representation ------------------------------------------------------------------------------

    @torch.no_grad()
    def phi(self, obs: np.ndarray) -> np.ndarray:
        """phi(s) for a batch of observations (DIAYN: the discriminator's logits or Gaussian mean)."""
        return self.phi_net(self._tensor(obs)).cpu().numpy()

    def goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray) -> np.ndarray:
        """The skill that heads from s to g. METRA/LSD: the prior's skill best aligned with phi(g) - phi(s),
        i.e. (phi(g) - phi(s)) / ||phi(g) - phi(s)|| for continuous skills and the one-hot whose centred
        direction has the largest inner product (the argmax of phi(g) - phi(s)) for discrete ones.
        DIAYN: the mode of q(z | g)."""
        phi_g = self.phi(goal_obs)
        phi_s = np.zeros_like(phi_g) if self.cfg.variant == "diayn" else self.phi(obs)
        if self.cfg.discrete_skills:
            return np.eye(self.skill_dim, dtype=np.float32)[(phi_g - phi_s).argmax(axis=1)]
        if self.cfg.variant == "diayn":
            return phi_g.astype(np.float32)
        return unit_direction(phi_s, phi_g)

    def intrinsic_reward(self, phi_s: torch.Tensor, phi_next: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """METRA/LSD: r = (phi(s') - phi(s))^T z (centred z for discrete skills).
        DIAYN: r = log q(z | s') - log p(z), with phi(s') the discriminator's output."""
        if self.cfg.variant != "diayn":
            direction = centred_skill(z) if self.cfg.discrete_skills else z
            return ((phi_next - phi_s) * direction).sum(dim=-1)
        if self.cfg.discrete_skills:
            return (F.log_softmax(phi_next, dim=-1) * z).sum(dim=-1) + math.log(self.skill_dim)
        q = torch.distributions.Normal(phi_next, self.phi_net.log_std.exp())
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        return (q.log_prob(z) - prior.log_prob(z)).sum(dim=-1)

    # -- learning ------------------------------------------------------------------------------------

    def observe(self, batch: Transition) -> dict[str, float]:
        """Store the step with each env's skill, then run the gradient steps the schedule asks for (as
        ``SACAgent``: ``gradient_steps`` every ``train_freq`` env steps once ``learning_starts`` were seen)."""
        self.buffer.add(batch, z=self.z.copy())
        before = self.env_steps
        self.env_steps += real_transitions(batch)
        rounds = gradient_rounds(before, self.env_steps, self.cfg.learning_starts, self.cfg.train_freq)
        metrics: dict[str, float] = {}
        for _ in range(rounds * self.cfg.gradient_steps):
            metrics = self.update(self.buffer.sample(self.cfg.batch_size, self.rng))
        if metrics:
            metrics["updates"] = float(self.updates)
        return metrics

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step in the reference order: phi, lambda, rewards from the new phi, then SAC."""
        z = batch["z"]
        metrics = self.update_phi_and_lambda(batch)
        with torch.no_grad():
            reward = self.intrinsic_reward(self.phi_net(batch["obs"]), self.phi_net(batch["next_obs"]), z)
        metrics.update(self.sac.update({**batch, "context": z}, reward=reward))
        metrics["intrinsic_reward"] = reward.mean().item()
        self.updates += 1
        return metrics

    def update_phi_and_lambda(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        phi_s, phi_next = self.phi_net(batch["obs"]), self.phi_net(batch["next_obs"])
        objective = self.intrinsic_reward(phi_s, phi_next, batch["z"])
        metrics: dict[str, float] = {}
        if self.dual:
            penalty = constraint_penalty(phi_s, phi_next, self.cfg.dual_slack)
            objective = objective + self.lam * penalty
        phi_loss = -objective.mean()
        self.phi_optimizer.zero_grad(set_to_none=True)
        phi_loss.backward()
        self.phi_optimizer.step()
        metrics["phi_loss"] = phi_loss.item()
        if self.dual:
            lambda_loss = self.log_lambda * penalty.detach().mean()
            self.lambda_optimizer.zero_grad(set_to_none=True)
            lambda_loss.backward()
            self.lambda_optimizer.step()
            metrics.update({"constraint_penalty": penalty.mean().item(), "lambda": self.lam.item()})
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "sac": self.sac.state_dict(),
            "phi": self.phi_net.state_dict(),
            "phi_optimizer": self.phi_optimizer.state_dict(),
            "log_lambda": self.log_lambda.detach().clone(),
            "lambda_optimizer": self.lambda_optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            **self.skill_state(),
            "env_steps": self.env_steps,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sac.load_state_dict(state["sac"])
        self.phi_net.load_state_dict(state["phi"])
        self.phi_optimizer.load_state_dict(state["phi_optimizer"])
        with torch.no_grad():
            self.log_lambda.copy_(state["log_lambda"])
        self.lambda_optimizer.load_state_dict(state["lambda_optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.load_skill_state(state)
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
