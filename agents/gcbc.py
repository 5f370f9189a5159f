"""Goal-conditioned behaviour cloning (GCBC; Lynch et al. 2019, Ghosh et al. 2021): the baseline the HILP paper
compares goal reaching with, learnt from the same dataset.

Hindsight relabelling turns every transition into a demonstration of reaching a state it led to: for the
transition (s_t, a_t) of an episode of T steps, the goal g is the state reached after step j, j uniform in
{t, ..., T-1} (the next state included), and the policy maximises

    E[ log pi(a_t | s_t, g) ]

with the Gaussian policy of ``agents.nets.GaussianActor`` on [s, g], the network HILP's policy uses (an MLP,
state-independent std). Defaults mirror HILP's: 3 x 512 units, lr 3e-4, batch 1024; ``GCBC_CPU`` is the
CPU-sized setting of the point-maze benchmark, HILP_CPU's policy size (2 x 128 units, batch 256). Our
choices, not a reference implementation's: uniform future goals including the next state (the usual
hindsight relabelling), the state reached after step j rather than the one before it.

An ``OfflineLearner`` (``agents.base``), evaluated through the skill contracts (``runners.skill_eval``) with
the goal observation as the "skill", held per episode as every skill agent's (``agents.skills``):
``skill_dim`` is the observation's size, ``phi`` is the identity (the flattened observation),
``goal_skill(obs, goal_obs)`` returns the goal observation and ``act_with_skill(obs, goal)`` is the policy;
``sample_skills`` draws dataset states from a bank of up to ``goal_bank_size`` observations kept with the
agent (so coverage and rl-eval work without the dataset). Reward prompting (``runners.prompt_eval``) asks
``reward_skill`` (``RewardPrompted``): GCBC has no reward representation, so its zero-shot answer is to head
for the labelled sample with the highest reward.

Vector observations only: a goal image would need its own encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import AgentConfig
from agents.iql import ActionScaler, OfflineData, check_box_actions
from agents.nets import FlatEncoder, GaussianActor, encoder_kind_for
from agents.skills import SkillConditionedAgent

GCBC_CPU: dict[str, Any] = {"hidden_sizes": [128, 128], "batch_size": 256}  # HILP_CPU's policy size


@dataclass
class GCBCConfig(AgentConfig):
    name: str = "gcbc"
    lr: float = 3e-4
    batch_size: int = 1024
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 512, 512])
    goal_bank_size: int = 1024  # dataset observations kept for sample_skills


class GCBCAgent(SkillConditionedAgent):
    """pi(a | s, g) cloned from the dataset's actions with hindsight goals."""

    kind: ClassVar[str] = "offline"
    eval_suites = ("goal_reaching", "reward_prompting")
    report_suites = ("coverage",)

    def __init__(self, cfg: GCBCConfig, observation_space: gym.Space, action_space: gym.Space, num_envs: int,
                 device: torch.device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        check_box_actions(action_space, cfg.name)
        if encoder_kind_for(observation_space) != "flat":
            raise ValueError(f"agent {cfg.name} needs vector observations (goals are concatenated to them); "
                             f"got {observation_space}")
        if cfg.batch_size < 1 or cfg.goal_bank_size < 1:
            raise ValueError(f"agent {cfg.name} needs batch_size >= 1 and goal_bank_size >= 1")
        self.obs_dim = int(np.prod(observation_space.shape))
        self.actions = ActionScaler(action_space, device)
        self.policy = GaussianActor(FlatEncoder(), self.obs_dim, self.obs_dim, int(np.prod(action_space.shape)),
                                    list(cfg.hidden_sizes)).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng()
        self.goal_bank = np.zeros((1, self.obs_dim), np.float32)  # replaced by dataset states in set_dataset
        self.init_skills()  # z: each env's episode goal in ``act``
        self.data: OfflineData | None = None
        self.dataset: Any = None
        self.dataset_path: str | None = None
        self.updates = 0

    def set_dataset(self, dataset: Any, source: str | None = None) -> None:
        self.data = OfflineData(dataset, self.device)
        self.dataset, self.dataset_path = dataset, source
        n = min(self.cfg.goal_bank_size, len(self.data))
        rows = np.random.default_rng(0).choice(len(self.data), n, replace=False)
        self.goal_bank = self.flat(self.data.next_observations[rows])
        self.init_skills()

    # -- skill hooks: the goal observation is the skill ------------------------------------------------

    def flat(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)

    @property
    def skill_dim(self) -> int:
        return self.obs_dim

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Goals drawn from the dataset's states (the bank kept with the agent)."""
        return self.goal_bank[rng.integers(len(self.goal_bank), size=n)].copy()

    def phi(self, obs: np.ndarray) -> np.ndarray:
        """The identity: GCBC's goal space is the observation space."""
        return self.flat(obs)

    def goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray) -> np.ndarray:
        return self.flat(goal_obs)

    def reward_skill(self, next_obs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Reward prompt: the labelled state with the highest reward, as the goal."""
        return self.flat(next_obs[[int(np.argmax(rewards))]])[0]

    @torch.no_grad()
    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        obs_t = torch.as_tensor(self.flat(obs), device=self.device)
        dist = self.policy(obs_t, torch.as_tensor(self.flat(z), device=self.device))
        action = self.actions.to_env(dist.mean if deterministic else dist.sample())
        return action.cpu().numpy().astype(self.action_space.dtype)

    # -- learning -----------------------------------------------------------------------------------

    def gradient_step(self) -> dict[str, float]:
        """Maximise log pi(a_t | s_t, s_{j+1}) with j uniform in [t, end of episode]."""
        if self.data is None:
            raise RuntimeError("GCBC learns from a dataset: call set_dataset first")
        data = self.data
        index = data.sample_indices(self.cfg.batch_size, self.rng)
        goal_index = self.rng.integers(index, data.episode_end[index] + 1)
        obs = data.tensor(self.flat(data.observations[index]))
        goals = data.tensor(self.flat(data.next_observations[goal_index]))
        action = self.actions.normalise(data.tensor(data.actions[index]))
        dist = self.policy(obs, goals)
        loss = -dist.log_prob(action).sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return {"bc_loss": loss.item(), "mse": (dist.mean - action).pow(2).mean().item()}

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "goal_bank": torch.from_numpy(self.goal_bank.copy()), **self.skill_state(), "updates": self.updates,
                "dataset_path": self.dataset_path or ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.goal_bank = state["goal_bank"].cpu().numpy().copy()
        self.updates = int(state["updates"])
        self.dataset_path = self.dataset_path or state.get("dataset_path") or None
        if "goals" in state:  # checkpoints written before the shared skill state kept the goals under "goals"
            state = {**state, "z": state["goals"]}
        self.load_skill_state(state)
