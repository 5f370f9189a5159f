"""Agents: one module per method plus the shared learners, networks and buffers they build on.

``AGENTS`` maps each CLI name (``agent=NAME``) to its config dataclass and agent class. Presets of one
method (a baseline that shares its code path, a per-environment preset) are further entries with
different config defaults.
"""

from __future__ import annotations

from agents.base import Agent, AgentConfig, Transition
from agents.gcbc import GCBCAgent, GCBCConfig
from agents.hilp import HILPAgent, HILPConfig
from agents.metra import DIAYNConfig, LSDConfig, METRAAgent, METRAConfig
from agents.ppo import PPOAgent, PPOConfig
from agents.random_agent import RandomAgent, RandomConfig
from agents.sac import SACAgent, SACConfig

AGENTS: dict[str, tuple[type[AgentConfig], type[Agent]]] = {
    "random": (RandomConfig, RandomAgent),
    "sac": (SACConfig, SACAgent),
    "ppo": (PPOConfig, PPOAgent),
    "metra": (METRAConfig, METRAAgent),
    "lsd": (LSDConfig, METRAAgent),
    "diayn": (DIAYNConfig, METRAAgent),
    "hilp": (HILPConfig, HILPAgent),
    "gcbc": (GCBCConfig, GCBCAgent),
}

__all__ = ["AGENTS", "Agent", "AgentConfig", "Transition"]
