"""Curricula: teachers that choose the levels a student trains on.

``TEACHERS`` maps each registry name (``curriculum=NAME``) to its config dataclass and teacher class;
``make_teacher`` builds one from a config, the parameter box of the levels and a seed. The contract
(``sample``, ``update``, ``state_dict``/``load_state_dict``, ``log_scalars``, ``plot``) is in
``curricula.base``; the methods follow flowersteam/teachDeepRL (see each module's docstring).
"""

from __future__ import annotations

from typing import Any

from curricula.alp_gmm import ALPGMM, ALPGMMConfig
from curricula.base import Teacher, TeacherConfig, check_bounds
from curricula.covar_gmm import CovarGMM, CovarGMMConfig
from curricula.random_teacher import RandomConfig, RandomTeacher
from curricula.riac import RIAC, RIACConfig

TEACHERS: dict[str, tuple[type[TeacherConfig], type[Teacher]]] = {
    "random": (RandomConfig, RandomTeacher),
    "alp_gmm": (ALPGMMConfig, ALPGMM),
    "covar_gmm": (CovarGMMConfig, CovarGMM),
    "riac": (RIACConfig, RIAC),
}


def make_teacher(cfg: TeacherConfig, low: Any, high: Any, seed: int) -> Teacher:
    """The teacher named by ``cfg.name`` over the box [low, high]."""
    if cfg.name not in TEACHERS:
        raise ValueError(f"unknown teacher {cfg.name!r}; choose one of: {', '.join(TEACHERS)}")
    return TEACHERS[cfg.name][1](cfg, low, high, seed)


__all__ = ["TEACHERS", "Teacher", "TeacherConfig", "check_bounds", "make_teacher"]
