"""The environment-spec contract shared by every env family.

An ``EnvSpec`` is a typed dataclass: it is what ``env=NAME`` selects on the command line (its fields are
the ``env.*`` overrides) and it knows how to build the Gymnasium env it describes. Runners only ever
call :meth:`EnvSpec.make` and :meth:`EnvSpec.make_vec`, so adding an env family means adding one spec
class and one entry in :data:`envs.ENVS`.

Vector envs: every vector env built here uses Gymnasium's ``AutoresetMode.SAME_STEP``. On the step that
ends an episode the env returns the *reset* observation, and the real last observation of the episode is
in ``info["final_obs"]`` (masked by ``info["_final_obs"]``). There is therefore no "reset step" whose
action is ignored, and a transition is always ``(obs, action, reward, final_obs or next_obs)``. Families
whose native vector env cannot report the last observation (Procgen) set ``provides_final_obs = False``;
their episode ends are all terminations, so the missing observation is never bootstrapped from.

What a family knows about itself, runners ask the spec through small hooks with defaults here (so a runner
never tests which family it holds): the per-step info fields it reports (``step_info_keys``), the kind of
its levels (``level_kind``), the return that counts as mastering a level (``mastery_return``), the axes of
``info["xy"]`` that state coverage counts (``coverage_axes``), its downstream reward tasks
(``reward_tasks``) and zero-shot prompting tasks (``prompt_tasks``, ``relabel_rewards``,
``labelling_spec``), its goal-reaching task (``goal_task``) and the walls drawn under trajectory plots
(``wall_map``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

AUTORESET_MODE = AutoresetMode.SAME_STEP


@dataclass
class GoalTask:
    """A zero-shot goal-reaching task: one episode per goal, a success when the final ``info["xy"]`` is within
    ``threshold`` of the goal. ``goal_observation(obs batch, goal x-y batch)`` builds the observation of
    "being at" each goal (what a goal-conditioned representation is fed); ``reset_options``, if given, are the
    per-goal reset options that also make the goal the env's own task."""

    goals: np.ndarray  # [G, 2] x-y
    threshold: float
    goal_observation: Callable[[np.ndarray, np.ndarray], np.ndarray]
    reset_options: list[dict[str, Any]] | None = None


@dataclass
class EnvSpec:
    """Base of every env config. ``name`` is the short CLI name (``env=NAME``)."""

    name: str = "?"
    # Episode length cap applied by gymnasium's TimeLimit; None keeps the family's own default.
    max_episode_steps: int | None = None

    # Families whose native vectorised implementation should be used instead of Sync/Async wrappers.
    native_vector: ClassVar[bool] = False
    # Evaluation suites ``rl-eval`` adds for every run on this env (e.g. the named mazes of ``env=maze``).
    report_suites: ClassVar[tuple[str, ...]] = ()
    provides_final_obs: ClassVar[bool] = True
    # The per-step info fields the env reports at reset and after every step (in every family's own format):
    # e.g. ``xy`` (a float64 position, for coverage and trajectories), ``level`` (the level played),
    # ``success``. Runners carry these on transitions and capture them in episodes.
    step_info_keys: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Raise ValueError (one line naming the valid choices) for a bad field value."""

    def gym_id(self) -> str:
        """The registered Gymnasium id this spec builds."""
        raise NotImplementedError

    def make_kwargs(self) -> dict[str, Any]:
        """Keyword arguments passed to ``gym.make(self.gym_id(), **kwargs)``."""
        return {}

    def make(self, render_mode: str | None = None, **overrides: Any) -> gym.Env:
        """One environment, built through Gymnasium's registry."""
        kwargs = {**self.make_kwargs(), **overrides}
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        if self.max_episode_steps is not None:
            kwargs["max_episode_steps"] = self.max_episode_steps
        return gym.make(self.gym_id(), **kwargs)

    # Level-parameterised families (the Levels convention, README "Architecture") override the methods
    # below. Their envs take ``reset(options={"level": params})`` and, for autoresets inside a vector env, play the level
    # stored in their ``next_level`` attribute (set with ``VectorEnv.set_attr("next_level", levels)``).
    def level_bounds(self) -> tuple[list[float], list[float]] | None:
        """The box of level parameters a teacher samples from, or None for an env without levels."""
        return None

    def level_kind(self) -> str | None:
        """The kind of level this env plays, which picks the teachers that apply: ``box`` for a box of
        continuous parameters (``level_bounds()``), ``maze`` for maze encodings, None for an env without
        levels. The default reads the level box; families with other encodings override it."""
        return "box" if self.level_bounds() is not None else None

    def score_range(self) -> tuple[float, float] | None:
        """Returns mapped to a [0, 1] competence for teachers (teachDeepRL's reward bounds), if known."""
        return None

    def test_levels(self) -> list | None:
        """A fixed held-out set of levels for evaluation, if the family defines one."""
        return None

    def mastery_return(self) -> float | None:
        """A level counts as mastered when its episode's return is above this (teachDeepRL's "percent
        mastered"); None where the family defines no threshold."""
        return None

    # ---- what evaluation suites ask ------------------------------------------------------------------

    def coverage_axes(self) -> tuple[int, ...]:
        """The axes of ``info["xy"]`` that state coverage counts in 1 x 1 bins: x and y by default, x only
        for planar runners (METRA's HalfCheetah metric); () for an env without ``xy``."""
        return (0, 1) if "xy" in self.step_info_keys else ()

    def reward_tasks(self) -> dict[str, EnvSpec]:
        """Downstream reward tasks, name -> a spec of the same dynamics that pays that task's reward (e.g. a
        dm_control domain's tasks); {} for none."""
        return {}

    def prompt_tasks(self) -> dict[str, EnvSpec]:
        """Tasks for zero-shot reward prompting, name -> spec paying its reward; the downstream tasks unless
        the family has tasks a prompt can express better (the point maze's corner goals)."""
        return self.reward_tasks()

    def relabel_rewards(self, dataset: Any) -> np.ndarray | None:
        """This spec's reward for each transition of ``dataset`` (an ``envs.datasets.TransitionDataset``),
        None where it cannot be computed. Default: a dataset collected on exactly this env config (episode
        length aside) keeps its own rewards."""
        meta = dataset.metadata or {}
        config = {k: v for k, v in (meta.get("env_config") or {}).items() if k != "max_episode_steps"}
        wanted = {k: v for k, v in self.to_config().items() if k != "max_episode_steps"}
        return np.asarray(dataset.rewards, np.float32) if meta.get("env") == self.name and config == wanted else None

    def labelling_spec(self) -> EnvSpec:
        """Where a random policy collects reward labels for this task: the spec itself unless its starts
        should be spread over the state space (the point maze's random starts)."""
        return self

    def goal_task(self) -> GoalTask | None:
        """The family's goal-reaching task, or None where an observation "at a goal" cannot be built."""
        return None

    def wall_map(self) -> np.ndarray | None:
        """Boolean wall cells indexed [x, y] (1 x 1 cells from the origin) drawn under trajectory plots, or
        None."""
        return None

    def make_native_vec(self, num_envs: int, seed: int) -> gym.vector.VectorEnv:
        """Only for ``native_vector`` families: their own batched implementation."""
        raise NotImplementedError(f"env {self.name!r} has no native vector implementation")

    def to_config(self) -> dict[str, Any]:
        """The spec's fields as JSON values (what ``env.*`` overrides would recreate)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def describe(self) -> str:
        """One line for logs and run names."""
        return self.name
