"""Per-(agent, env) presets: the settings a paper uses for a method on an environment.

A preset is a Hydra config in the ``preset`` group, merged at the global package after the agent and env
groups and the root config, and before the command line. The root config's defaults name the option
``${agent}_${env}`` as optional, so ``rl-run agent=metra env=ant`` picks ``metra_ant`` when it exists and
nothing otherwise; ``preset=NAME`` picks another one (e.g. the paper-sized ``metra_quadruped_paper``),
``preset=none`` none at all. Overrides on the command line always win over a preset. The preset that
was applied is recorded in the run config's ``preset`` key.

Skill discovery (METRA, Park et al. 2024, and its baselines LSD and DIAYN in the same code path):

* ``*_ant``: 2-D continuous skills; Ant as LSD and METRA set it up: position in the observation, no
  contact forces, no early termination, 200-step episodes.
* ``*_halfcheetah``: 16 discrete skills; position in the observation, 200-step episodes.
* ``*_quadruped``: 4-D continuous skills. The paper learns from 64 x 64 pixels (frame stack 3, action
  repeat 2, 200-step episodes); rendering without a GPU runs at ~20 frames/s, so the CPU preset keeps
  the state observation with the paper's episode length and action repeat, and ``*_quadruped_paper``
  is the paper's pixel setting.
* ``*_<env>_paper``: the reference code's learner sizes on top of the env preset: 2 x 1024 MLPs, lr 1e-4,
  10k steps before the first update, 50 gradient steps per 1,600 env steps state-based (200 from
  pixels), replay 1M (300k from pixels). Hours on a GPU.

The CPU presets keep the agent's CPU-sized learner (see ``agents.metra``).

Offline agents: ``hilp_pointmaze`` and ``gcbc_pointmaze`` shrink the paper's networks to a CPU size
(``agents.hilp.HILP_CPU``, ``agents.gcbc.GCBC_CPU``: 2 x 128, batch 256, HILP with 8-D skills).
"""

from __future__ import annotations

from typing import Any

from agents.gcbc import GCBC_CPU
from agents.hilp import HILP_CPU

SKILL_AGENTS = ("metra", "lsd", "diayn")

# env -> (env overrides, agent overrides) of the CPU-sized preset
SKILL_ENV_PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "ant": ({"xy_in_obs": True, "include_cfrc_ext": False, "terminate_when_unhealthy": False, "max_episode_steps": 200},
            {"skill_dim": 2, "discrete_skills": False}),
    "halfcheetah": ({"xy_in_obs": True, "max_episode_steps": 200}, {"skill_dim": 16, "discrete_skills": True}),
    "quadruped": ({"action_repeat": 2, "max_episode_steps": 200}, {"skill_dim": 4, "discrete_skills": False}),
}

# The reference code's learner (state-based); pixel runs change what PIXEL_PAPER says.
PAPER_AGENT = {"lr": 1e-4, "hidden_sizes": [1024, 1024], "phi_hidden_sizes": [1024, 1024], "phi_lr": 1e-4,
               "dual_lr": 1e-4, "batch_size": 256, "learning_starts": 10_000, "train_freq": 32, "gradient_steps": 1,
               "buffer_size": 1_000_000}
PIXEL_PAPER_AGENT = {**PAPER_AGENT, "train_freq": 8, "buffer_size": 300_000}
PIXEL_ENV = {"pixels": True, "image_size": 64, "frame_stack": 3}


def _preset(name: str, agent: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    return {"preset": name, "agent": agent, "env": env}


def build_presets() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """(name -> config node (global package), name -> the (agent, env) it is for); ``none`` applies nothing."""
    presets: dict[str, dict[str, Any]] = {"none": {"preset": "none"}}
    targets: dict[str, tuple[str, str]] = {}
    for agent in SKILL_AGENTS:
        for env, (env_values, agent_values) in SKILL_ENV_PRESETS.items():
            name = f"{agent}_{env}"
            targets[name] = targets[f"{name}_paper"] = (agent, env)
            presets[name] = _preset(name, dict(agent_values), dict(env_values))
            pixels = env == "quadruped"
            paper_agent = {**(PIXEL_PAPER_AGENT if pixels else PAPER_AGENT), **agent_values}
            paper_env = {**env_values, **(PIXEL_ENV if pixels else {})}
            presets[f"{name}_paper"] = _preset(f"{name}_paper", paper_agent, paper_env)
    # Offline agents: the paper's networks are the defaults; the point maze gets the CPU-sized ones.
    for agent, values in (("hilp", HILP_CPU), ("gcbc", GCBC_CPU)):
        presets[f"{agent}_pointmaze"] = _preset(f"{agent}_pointmaze", dict(values), {})
        targets[f"{agent}_pointmaze"] = (agent, "pointmaze")
    return presets, targets


PRESETS, PRESET_TARGETS = build_presets()
