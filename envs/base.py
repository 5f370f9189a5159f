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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.vector import AutoresetMode

AUTORESET_MODE = AutoresetMode.SAME_STEP


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

    # Level-parameterised families (see DESIGN "Levels") override the three methods below. Their envs
    # take ``reset(options={"level": params})`` and, for autoresets inside a vector env, play the level
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

    def make_native_vec(self, num_envs: int, seed: int) -> gym.vector.VectorEnv:
        """Only for ``native_vector`` families: their own batched implementation."""
        raise NotImplementedError(f"env {self.name!r} has no native vector implementation")

    def describe(self) -> str:
        """One line for logs and run names."""
        return self.name
