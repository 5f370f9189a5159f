"""HILP: Hilbert foundation policies (Park, Kreiman and Levine, "Foundation Policies with Hilbert
Representations", ICML 2024), learnt offline from a dataset of reward-free transitions.

The algorithm, in the paper's names.

1. Hilbert representation. phi: S -> R^D is trained so that distances in R^D are temporal distances:
   the goal-conditioned value is parameterised as

       V(s, g) = -||phi(s) - phi(g)||        (sqrt of max(||.||^2, 1e-6): finite gradients at s = g)

   and fitted by goal-conditioned IQL with reward -1 per step and 0 (with the episode ending, mask 0) at
   the goal. Two phi networks (an ensemble) each give a V_i, with Polyak-averaged targets phi'_i (rate tau):

       q   = r + gamma * mask * min_i V'_i(s', g)          adv = q - mean_i V'_i(s, g)
       q_i = r + gamma * mask * V'_i(s', g)
       L_phi = sum_i E[ |tau_phi - 1(adv < 0)| (q_i - V_i(s, g))^2 ]     (expectile tau_phi = 0.95)

   Goals g: 62.5% a later state of the same trajectory (offset k ~ Geometric(1 - gamma), cut at the
   trajectory's end), 37.5% a random dataset state. "s == g" means the goal's dataset row is the
   transition's own row.

2. Latent-conditioned policy. With z uniform on the unit sphere of R^D, the intrinsic reward

       r(s, z, s') = (phi(s') - phi(s))^T z

   pays for moving along z in the Hilbert space; pi(a | s, z) is learnt offline with IQL + AWR on [s, z]
   (``agents.iql``: expectile 0.9, AWR temperature 10, gamma 0.99), rewards recomputed from the current
   phi (the first ensemble member) at every gradient step.

3. Zero-shot prompting (``runners.skill_eval``, ``runners.prompt_eval``): goal g -> z = (phi(g) - phi(s)) /
   ||phi(g) - phi(s)||, recomputed every step; reward r -> z = the least-squares w of r ~ phi(s')^T w over
   labelled samples, normalised. HILP-Plan (``goal_planning`` suite): the goal is first replaced by a
   subgoal, the mean phi of the 50 dataset states (of 50,000) nearest the midpoint of s and g in the
   Hilbert space (the largest of the two distances smallest), recursively (3 times: an eighth of the way).

Defaults are the paper's (and the reference code's): D = 32, lr 3e-4 for every network, 3 x 512 MLPs with
LayerNorm and GELU (the policy without LayerNorm), batch 1024, gamma 0.99, tau 0.005; HILP-Plan as the
README of the code runs it (3 recursions, 50,000 states, 50 nearest). ``HILP_CPU`` is the CPU-sized
point-maze setting of ``benchmarks/hilp_zero_shot.py``: 2 x 128 units and batch 256 (one gradient step took
26 ms on a busy core against 740 ms at the paper's sizes), and D = 8. Why a smaller D on a 2-D maze: phi's
image is a 2-D sheet in R^D, and a skill z drawn uniformly from the sphere of R^D projects onto it by about
1 / sqrt(D), so the intrinsic rewards of different actions differ little (measured: a spread of 0.21 per
step over the eight unit actions at D = 32), AWR's weights exp(10 * advantage) barely prefer any action, and
the policy learnt from uniformly random actions stays near their mean (mean |action| 0.3 at D = 32 against
0.45-0.5 at D = 4-8 after 4,000 steps on the medium maze), while the Hilbert distances were as good
(correlation 0.90 with the maze's shortest-path distances either way).

Where this module departs from the authors' code (seohongpark/HILP, ``hilp_gcrl``), and why:

* LayerNorm sits before the activation (``agents.nets.mlp``) instead of after it; the networks are
  otherwise the same (GELU, 3 x 512, LayerNorm on phi, value and critics, none on the policy).
* One Adam optimiser per network where the code has one for all; as in the code, every loss of a step is
  computed at the same parameters (the skill rewards with phi before this step's update) before any
  network steps, so the gradients are the code's.
* Every transition of our datasets is a real step (whole episodes, see ``envs.datasets``), so a goal from
  the same trajectory is cut at the episode's last transition exactly as the code's ``terminal_locs``.
* The skill critic bootstraps through episode ends (``done`` = 0), as the code does: the intrinsic reward
  does not stop when the environment's episode does.

Contracts (``agents.base``): an ``OfflineLearner`` (``kind = "offline"``, ``runners.trainers.offline``:
``set_dataset(dataset, source)`` once, then ``gradient_step()``); a ``SkillAgent`` (``skill_dim``,
``sample_skills(n, rng)``, ``act_with_skill(obs, z, deterministic)``; per-episode skills from ``agents.skills``)
with a ``SkillRepresentation`` (``phi(obs)``), ``GoalPrompted`` (``goal_skill(obs, goal_obs)``) and
``PlanPrompted`` (HILP-Plan's ``planned_goal_skill(obs, goal_obs, waypoint_phis)``, ``runners.prompt_eval``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import AgentConfig
from agents.iql import IQL, IQLConfig, OfflineData, check_box_actions, expectile_loss
from agents.nets import make_encoder, mlp
from agents.skills import SkillConditionedAgent, unit_direction

# The CPU-sized point-maze setting (agent.* overrides) of the benchmark; see the module docstring.
HILP_CPU: dict[str, Any] = {"hidden_sizes": [128, 128], "batch_size": 256, "skill_dim": 8}


@dataclass
class HILPConfig(AgentConfig):
    name: str = "hilp"
    skill_dim: int = 32  # D, the dimension of phi and of z
    lr: float = 3e-4
    batch_size: int = 1024
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 512, 512])  # phi and every IQL network
    layer_norm: bool = True
    encoder: str = "auto"  # observation encoder of every network (see agents.nets.make_encoder)
    # Hilbert representation: goal-conditioned IQL on V(s, g) = -||phi(s) - phi(g)||
    phi_expectile: float = 0.95
    phi_gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of phi's targets and of the skill critics' targets
    p_trajgoal: float = 0.625
    p_randomgoal: float = 0.375
    # Latent-conditioned policy: IQL + AWR on [s, z] with r = (phi(s') - phi(s))^T z
    expectile: float = 0.9
    temperature: float = 10.0
    gamma: float = 0.99
    # HILP-Plan (the ``goal_planning`` suite): subgoal search over dataset states in the Hilbert space
    planning_recursions: int = 3
    planning_states: int = 50_000
    planning_knns: int = 50


def hilbert_distance(phi_s: torch.Tensor, phi_g: torch.Tensor) -> torch.Tensor:
    """||phi(s) - phi(g)||, as sqrt(max(squared distance, 1e-6)) so the gradient stays finite at s = g."""
    return (phi_s - phi_g).pow(2).sum(-1).clamp(min=1e-6).sqrt()


class HilbertPhi(nn.Module):
    """phi(s): an observation encoder and an MLP to R^D."""

    def __init__(self, observation_space: gym.Space, encoder: str, hidden_sizes: list[int], skill_dim: int,
                 layer_norm: bool) -> None:
        super().__init__()
        self.encoder, feature_dim = make_encoder(observation_space, encoder)
        self.head = mlp(feature_dim, hidden_sizes, skill_dim, nn.GELU, layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs))


@torch.no_grad()
def plan_subgoal(phi_s: np.ndarray, phi_g: np.ndarray, waypoints: np.ndarray | torch.Tensor, recursions: int,
                 knns: int) -> np.ndarray:
    """HILP-Plan's subgoal in the Hilbert space, per row: ``recursions`` times, replace the goal by the mean phi
    of the ``knns`` waypoints w minimising max(||w - phi(s)||, ||w - phi(g)||), i.e. the states nearest the
    temporal midpoint of s and g (so each recursion halves the distance to the subgoal). Torch on the
    waypoints' device: tens of thousands of waypoints per environment step."""
    waypoints = torch.as_tensor(waypoints, dtype=torch.float32)
    k = min(knns, len(waypoints))
    to_s = torch.cdist(torch.as_tensor(phi_s, dtype=torch.float32, device=waypoints.device), waypoints)
    goal = torch.as_tensor(phi_g, dtype=torch.float32, device=waypoints.device)
    for _ in range(recursions):
        nearest = torch.maximum(to_s, torch.cdist(goal, waypoints)).topk(k, dim=1, largest=False).indices
        goal = waypoints[nearest].mean(dim=1)
    return goal.cpu().numpy()


def uniform_sphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform on the unit sphere of R^d (normalised Gaussians)."""
    z = rng.standard_normal((n, d))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


class HILPAgent(SkillConditionedAgent):
    """Hilbert representation phi plus a latent-conditioned IQL policy, learnt from a dataset."""

    kind: ClassVar[str] = "offline"
    eval_suites = ("goal_reaching", "goal_planning", "reward_prompting")
    report_suites = ("coverage",)

    def __init__(self, cfg: HILPConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        check_box_actions(action_space, cfg.name)
        if cfg.skill_dim < 1 or cfg.batch_size < 1:
            raise ValueError(f"agent {cfg.name} needs skill_dim >= 1 and batch_size >= 1; got {cfg.skill_dim}, {cfg.batch_size}")
        if not 0.0 < cfg.phi_expectile < 1.0:
            raise ValueError(f"agent {cfg.name} needs 0 < phi_expectile < 1; got {cfg.phi_expectile}")
        self.phi_nets = nn.ModuleList([
            HilbertPhi(observation_space, cfg.encoder, list(cfg.hidden_sizes), cfg.skill_dim, cfg.layer_norm)
            for _ in range(2)]).to(device)
        self.phi_targets = copy.deepcopy(self.phi_nets).requires_grad_(False)
        self.phi_optimizer = torch.optim.Adam(self.phi_nets.parameters(), lr=cfg.lr)
        iql_cfg = IQLConfig(lr=cfg.lr, gamma=cfg.gamma, tau=cfg.tau, expectile=cfg.expectile, temperature=cfg.temperature,
                            hidden_sizes=list(cfg.hidden_sizes), layer_norm=cfg.layer_norm, encoder=cfg.encoder)
        self.iql = IQL(iql_cfg, observation_space, action_space, device, context_dim=cfg.skill_dim, name=cfg.name)
        self.rng = np.random.default_rng()  # batches, goals and skills
        self.init_skills()  # z: the skill each env's episode follows in ``act``
        self.data: OfflineData | None = None
        self.dataset: Any = None  # the TransitionDataset given to ``set_dataset`` (reward prompting reads it)
        self.dataset_path: str | None = None  # where it came from; kept in the checkpoint for rl-eval
        self.updates = 0

    def set_dataset(self, dataset: Any, source: str | None = None) -> None:
        """The transitions to learn from (``envs.datasets.TransitionDataset``) and their path."""
        self.data = OfflineData(dataset, self.device)
        self.dataset, self.dataset_path = dataset, source

    # -- skills and acting --------------------------------------------------------------------------

    @property
    def skill_dim(self) -> int:
        return self.cfg.skill_dim

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """z uniform on the unit sphere of R^D."""
        return uniform_sphere(n, self.cfg.skill_dim, rng)

    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """pi(a | s, z) for a batch of observations and one skill per row."""
        action = self.iql.act(self._tensor(obs), self._tensor(z).float(), deterministic)
        return action.cpu().numpy().astype(self.action_space.dtype)

    @torch.no_grad()
    def phi(self, obs: np.ndarray) -> np.ndarray:
        """phi(s) of the first ensemble member (the one the policy's rewards and the prompts use)."""
        return self.phi_nets[0](self._tensor(obs)).cpu().numpy()

    def goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray) -> np.ndarray:
        """z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||: the direction of the goal in the Hilbert space."""
        return unit_direction(self.phi(obs), self.phi(goal_obs))

    def planned_goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray, waypoint_phis: np.ndarray | torch.Tensor) -> np.ndarray:
        """HILP-Plan: z towards the subgoal ``plan_subgoal`` finds among ``waypoint_phis`` (phi of dataset states)."""
        phi_s = self.phi(obs)
        subgoal = plan_subgoal(phi_s, self.phi(goal_obs), waypoint_phis, self.cfg.planning_recursions, self.cfg.planning_knns)
        return unit_direction(phi_s, subgoal)

    # -- learning -----------------------------------------------------------------------------------

    def phi_loss(self, batch: dict[str, torch.Tensor], goals: torch.Tensor,
                 success: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(goal-conditioned IQL loss on the Hilbert value, phi(s) and phi(s') of the first member without
        gradient); ``success``: s == g. See the module docstring."""
        obs, next_obs, n = batch["obs"], batch["next_obs"], len(goals)
        reward, mask = success.float() - 1.0, 1.0 - success.float()
        gamma = self.cfg.phi_gamma
        with torch.no_grad():  # one pass per target network over [s; s'; g]
            targets = [net(torch.cat([obs, next_obs, goals])).split(n) for net in self.phi_targets]
            next_v1, next_v2 = (-hilbert_distance(t_next, t_goal) for _, t_next, t_goal in targets)
            v1_t, v2_t = (-hilbert_distance(t_obs, t_goal) for t_obs, _, t_goal in targets)
            q = reward + gamma * mask * torch.min(next_v1, next_v2)
            adv = q - (v1_t + v2_t) / 2
            q1, q2 = reward + gamma * mask * next_v1, reward + gamma * mask * next_v2
        # online passes; the first member also maps s' (for the skill rewards, without gradient)
        phi_obs, phi_goal, phi_next = self.phi_nets[0](torch.cat([obs, goals, next_obs])).split(n)
        v1 = -hilbert_distance(phi_obs, phi_goal)
        v2 = -hilbert_distance(*self.phi_nets[1](torch.cat([obs, goals])).split(n))
        loss = (expectile_loss(q1 - v1, self.cfg.phi_expectile, adv).mean()
                + expectile_loss(q2 - v2, self.cfg.phi_expectile, adv).mean())
        metrics = {"phi_loss": loss.item(), "phi_v": ((v1 + v2) / 2).mean().item(), "phi_adv": adv.mean().item(),
                   "phi_accept": (adv >= 0).float().mean().item()}
        return loss, (phi_obs.detach(), phi_next.detach()), metrics

    def sample_batch(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(transitions, goal observations, s == g) for one gradient step."""
        if self.data is None:
            raise RuntimeError("HILP learns from a dataset: call set_dataset first")
        index = self.data.sample_indices(self.cfg.batch_size, self.rng)
        goal_index = self.data.goal_indices(index, self.rng, self.cfg.p_trajgoal, self.cfg.p_randomgoal, self.cfg.phi_gamma)
        goals = self.data.tensor(self.data.observations[goal_index])
        return self.data.transitions(index), goals, self.data.tensor(goal_index == index)

    def gradient_step(self) -> dict[str, float]:
        """phi's loss and IQL + AWR's on [s, z] with r = (phi(s') - phi(s))^T z, all at the current parameters
        (as the reference code), then every optimiser step and the Polyak targets."""
        batch, goals, success = self.sample_batch()
        phi_loss, (phi_obs, phi_next), metrics = self.phi_loss(batch, goals, success)
        z = self._tensor(self.sample_skills(len(success), self.rng))
        reward = ((phi_next - phi_obs) * z).sum(-1)
        self.phi_optimizer.zero_grad(set_to_none=True)
        phi_loss.backward()
        self.phi_optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.phi_targets.parameters(), self.phi_nets.parameters()):
                target.lerp_(online, self.cfg.tau)
        metrics.update(self.iql.update({**batch, "context": z}, reward=reward, done=torch.zeros_like(reward)))
        metrics["intrinsic_reward"] = reward.mean().item()
        self.updates += 1
        return metrics

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"phi": self.phi_nets.state_dict(), "phi_targets": self.phi_targets.state_dict(),
                "phi_optimizer": self.phi_optimizer.state_dict(), "iql": self.iql.state_dict(), **self.skill_state(),
                "updates": self.updates, "dataset_path": self.dataset_path or ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.phi_nets.load_state_dict(state["phi"])
        self.phi_targets.load_state_dict(state["phi_targets"])
        self.phi_optimizer.load_state_dict(state["phi_optimizer"])
        self.iql.load_state_dict(state["iql"])
        self.load_skill_state(state)
        self.updates = int(state["updates"])
        self.dataset_path = self.dataset_path or state.get("dataset_path") or None
