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

Beyond ``act``/``observe``, what a method offers is declared, not probed: the ``typing.Protocol``s below
name the contracts runners and suites rely on (a skill agent, its representation and prompts, an offline
learner, a student that publishes rollout scores), checked with ``isinstance`` and, where a run needs
one, with ``require_contract`` (a one-line error naming what is missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

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
        if cls.kind == "offline" and not issubclass(cls, OfflineLearner):
            lacking = [name for name in contract_members(OfflineLearner) if not hasattr(cls, name)]
            raise TypeError(f"{cls.__name__} is an offline method but lacks {', '.join(lacking)} (OfflineLearner)")

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


# -- contracts -------------------------------------------------------------------------------------------


@runtime_checkable
class SkillAgent(Protocol):
    """A policy pi(a | s, z) over skills z drawn from a prior p(z) (METRA, LSD, DIAYN, HILP; GCBC with goal
    observations as skills): what the skill evaluation suites drive."""

    @property
    def skill_dim(self) -> int:
        """The size of z."""

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n skills from the prior, shape (n, skill_dim)."""

    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """pi(a | s, z) for a batch of observations and one skill per row."""


@runtime_checkable
class SkillRepresentation(Protocol):
    """phi: S -> R^D, the state representation skills live in (coverage, prompting by regression, planning)."""

    def phi(self, obs: np.ndarray) -> np.ndarray:
        """phi(s) for a batch of observations."""


@runtime_checkable
class GoalPrompted(Protocol):
    """An agent's own zero-shot goal prompt (else suites use (phi(g) - phi(s)) / ||phi(g) - phi(s)||)."""

    def goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray) -> np.ndarray:
        """The skill that heads from each s to its goal g."""


@runtime_checkable
class PlanPrompted(Protocol):
    """Goal prompting through subgoals found among dataset states in the representation (HILP-Plan)."""

    def planned_goal_skill(self, obs: np.ndarray, goal_obs: np.ndarray, waypoint_phis: Any) -> np.ndarray:
        """The skill towards the subgoal planned between s and g among ``waypoint_phis``."""


@runtime_checkable
class RewardPrompted(Protocol):
    """An agent's own zero-shot reward prompt (else suites regress the rewards on phi(s'))."""

    def reward_skill(self, next_obs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """The skill for the reward labelled on these successor states."""


@runtime_checkable
class OfflineLearner(Protocol):
    """A method that learns from a dataset (``kind == "offline"``): ``set_dataset`` once, then one
    ``gradient_step`` per training step."""

    def set_dataset(self, dataset: Any, source: str | None = None) -> None:
        """The transitions to learn from (``envs.datasets.TransitionDataset``) and their path."""

    def gradient_step(self) -> dict[str, float]:
        """One update; its training scalars."""


@runtime_checkable
class ScoredStudent(Protocol):
    """A student whose levels can be scored by value losses and whose learning can be masked per env (PPO
    under PLR/DRED): after every update it publishes the rollout's per-step advantages and values."""

    last_rollout_stats: Any  # None before the first update
    learning_mask: np.ndarray | None  # per env: learn from its transitions; None = all

    def set_learning_mask(self, mask: np.ndarray) -> None:
        """Per env, whether the student learns from the episode it plays next."""


def contract_members(contract: type) -> tuple[str, ...]:
    """The attributes and methods a contract (one of the protocols above) asks for."""
    names = [*vars(contract).get("__annotations__", {}),
             *(name for name, value in vars(contract).items()
               if not name.startswith("_") and (callable(value) or isinstance(value, property)))]
    return tuple(dict.fromkeys(names))


def missing_members(obj: Any, contract: type) -> list[str]:
    """The members of ``contract`` that ``obj`` lacks (empty when ``isinstance(obj, contract)``)."""
    return [name for name in contract_members(contract) if not hasattr(obj, name)]


def require_contract(agent: Any, contract: type, needed_by: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` (one line) unless ``agent`` implements ``contract``, naming what it lacks."""
    if isinstance(agent, contract):
        return
    name = agent.cfg.name if isinstance(agent, Agent) else type(agent).__name__
    raise error(f"{needed_by} needs a {contract.__name__} agent ({', '.join(contract_members(contract))}); "
                f"agent {name!r} lacks {', '.join(missing_members(agent, contract))}")


# -- contracts of the trainer kinds beyond online/offline ------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One phase of a phased method. ``mode`` is how it learns: ``offline`` (one unit = one
    ``gradient_step`` on the run's dataset) or ``online`` (one unit = one env step, collected in vector
    steps through ``act``/``observe``). ``steps`` is its budget in those units; ``None`` (last phase only)
    runs until the run's ``steps``."""

    name: str
    mode: str
    steps: int | None


@runtime_checkable
class PhasedMethod(Protocol):
    """A method that learns in a fixed sequence of phases (``kind == "phased"``). The phased trainer calls
    ``begin_phase(name)`` once as each phase starts (never again on resume: the agent's ``state_dict`` holds
    whatever that set up), ``set_dataset`` before the first offline phase, then ``gradient_step`` or
    ``act``/``observe`` per unit."""

    def phases(self) -> list[Phase]:
        """The phases, in order."""

    def begin_phase(self, name: str) -> None:
        """Phase ``name`` starts now."""


@runtime_checkable
class PopulationMethod(Protocol):
    """A method that proposes policies and learns only from their episodes' outcomes (``kind ==
    "population"``: quality-diversity and evolution strategies). Each generation the trainer plays one
    episode per proposed genome, in batches, locally or on Ray workers (``runners.episodes.play_episodes``)."""

    episode_info_keys: tuple[str, ...]  # per-step info fields to record for ``tell`` (e.g. ("xy",)), or ()
    episode_render: str | None  # frames to record: None, "final" (the last frame) or "all"

    def ask(self) -> list[np.ndarray]:
        """The genomes to evaluate now (plain parameter vectors)."""

    def genome_policy(self, genomes: list[np.ndarray]) -> Any:
        """A picklable batched policy ``(obs, rows) -> actions`` where row ``k`` plays ``genomes[k]``."""

    def tell(self, genomes: list[np.ndarray], results: Any) -> dict[str, float]:
        """Learn from the genomes' episodes (``runners.episodes`` results, in the order of ``genomes``)."""


@runtime_checkable
class StudentsTeacher(Protocol):
    """A teacher that trains its own students on the levels it proposes (``kind == "students"``: PAIRED,
    CLUTR). Each round every student plays the same level batch for ``rollout_steps`` vector steps (the
    envs replay their level on autoreset) and learns from its own transitions only; the teacher then
    learns from the students' per-level returns (regret)."""

    students: dict[str, Agent]
    rollout_steps: int

    def propose_levels(self, n: int) -> list[Any]:
        """One level per env for the next round."""

    def learn_from_round(self, levels: list[Any], returns: dict[str, list[list[float]]]) -> dict[str, float]:
        """``returns[student][k]``: the returns of the episodes that student finished on ``levels[k]``."""
