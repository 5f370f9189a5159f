"""Skills held for an episode: the bookkeeping every skill-conditioned agent shares.

A skill-conditioned agent (METRA, LSD, DIAYN, HILP; GCBC with a goal observation as its skill) acts with a
policy pi(a | s, z) whose skill z is drawn from the method's prior p(z) once per trajectory and held until
that trajectory ends, as URLB's agents do with their ``meta`` (``init_meta`` at an episode start; the meta
travels with every step into the replay buffer). ``SkillConditionedAgent`` keeps that part once:

* ``z``: the skill of each env's running episode, shape (num_envs, skill_dim), drawn at construction, when
  the agent is seeded and, per env, whenever its episode ends (``reset_episodes``);
* ``act(obs)`` = ``act_with_skill(obs, z)``, a batch of another size (an evaluation env) using the skills of
  envs 0, 1, ... in turn;
* ``skill_state()`` / ``load_skill_state(state)``: the running skills and the agent's generator under the
  checkpoint keys ``z`` and ``rng``; skills saved for another number of envs (``rl-eval`` rebuilds the agent
  with one env) are drawn afresh.

A method supplies its prior and its policy: ``skill_dim``, ``sample_skills(n, rng)`` and
``act_with_skill(obs, z, deterministic)`` (the ``agents.base.SkillAgent`` contract). The generator
``rng`` is the agent's own: skills are drawn from the same stream as its batches, as before this frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.base import Agent


def unit_direction(phi_s: np.ndarray, phi_g: np.ndarray) -> np.ndarray:
    """(phi(g) - phi(s)) / ||phi(g) - phi(s)|| per row (a zero difference stays zero): the skill that heads
    from s to g in a representation where skills are directions."""
    direction = phi_g - phi_s
    return (direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-8)).astype(np.float32)


class SkillConditionedAgent(Agent):
    """Base of agents acting with pi(a | s, z), one skill per env held for the episode (module docstring)."""

    z: np.ndarray
    rng: np.random.Generator

    # -- what a method supplies -----------------------------------------------------------------------

    @property
    def skill_dim(self) -> int:
        raise NotImplementedError

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n skills from the prior p(z), shape (n, skill_dim)."""
        raise NotImplementedError

    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """pi(a | s, z) for a batch of observations and one skill per row."""
        raise NotImplementedError

    # -- the skills of the running episodes -----------------------------------------------------------

    def init_skills(self) -> None:
        """A fresh skill for every env (at construction, once the prior is ready, and when seeded)."""
        self.z = self.sample_skills(self.num_envs, self.rng)

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.init_skills()

    def reset_episodes(self, done: np.ndarray) -> None:
        """A new skill for every env whose episode ended: one z per trajectory."""
        done = np.asarray(done, bool)
        if done.any():
            self.z[done] = self.sample_skills(int(done.sum()), self.rng)

    def running_skills(self, n: int) -> np.ndarray:
        """The skills for a batch of ``n`` observations: env i's for row i, envs 0, 1, ... in turn beyond."""
        return self.z[np.arange(n) % self.num_envs]

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Each env acts with its current skill."""
        return self.act_with_skill(obs, self.running_skills(len(obs)), deterministic)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), device=self.device)

    # -- state ----------------------------------------------------------------------------------------

    def skill_state(self) -> dict[str, Any]:
        """The running skills and the generator they are drawn from, for ``state_dict``."""
        return {"z": torch.from_numpy(self.z.copy()), "rng": self.rng.bit_generator.state}

    def load_skill_state(self, state: dict[str, Any]) -> None:
        """Inverse of ``skill_state``; skills saved for another number of envs are drawn afresh."""
        self.rng.bit_generator.state = state["rng"]
        z = state["z"].cpu().numpy()
        self.z = z.copy() if z.shape == self.z.shape else self.sample_skills(self.num_envs, self.rng)
