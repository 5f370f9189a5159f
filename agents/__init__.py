"""Agents: one module per method plus the shared learners, networks and buffers they build on.

``AGENTS`` maps each CLI name (``agent=NAME``) to its config dataclass and agent class. Presets of one
method (a baseline that shares its code path, a per-environment preset) are further entries with
different config defaults. Each agent class declares the trainer kind that drives it (``Agent.kind``, one
of ``METHOD_KINDS``) and implements the contracts of ``agents.base`` that its evaluation and trainers use.
"""

from __future__ import annotations

from agents.base import (
    METHOD_KINDS,
    Agent,
    AgentConfig,
    GoalPrompted,
    OfflineLearner,
    PlanPrompted,
    RewardPrompted,
    ScoredStudent,
    SkillAgent,
    SkillRepresentation,
    Transition,
    require_contract,
)
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

__all__ = ["AGENTS", "METHOD_KINDS", "Agent", "AgentConfig", "GoalPrompted", "OfflineLearner", "PlanPrompted",
           "RewardPrompted", "ScoredStudent", "SkillAgent", "SkillRepresentation", "Transition", "require_contract"]
