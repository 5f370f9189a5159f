"""Curricula: teachers that choose the levels a student trains on.

``TEACHERS`` maps each registry name (``curriculum=NAME``) to its config dataclass and teacher class;
``make_teacher`` builds one from a config, a seed and, for teachers of box levels, the parameter box. The
contract (``sample``, ``update``, ``state_dict``/``load_state_dict``, ``log_scalars``, ``plot``, and the
level kind each teacher makes) and the frame every teacher shares (``LevelTeacher``, with its box and maze
kinds ``BoxTeacher`` and ``curricula.maze_teacher.MazeTeacher``) are in ``curricula.base``.

* box levels (parameter vectors): ``random``, ``alp_gmm``, ``covar_gmm``, ``riac`` after
  flowersteam/teachDeepRL;
* maze levels (``envs.maze`` encodings): ``dr`` (domain randomisation), ``plr`` (Prioritised Level Replay,
  ``robust=true`` for PLR-perp) after facebookresearch/dcd, ``dred`` (data-regularised environment
  design) after uoe-agents/dred.
"""

from __future__ import annotations

from typing import Any

from curricula.alp_gmm import ALPGMM, ALPGMMConfig
from curricula.base import BoxTeacher, BoxTeacherConfig, LevelTeacher, LevelTeacherConfig, Teacher, TeacherConfig, check_bounds
from curricula.covar_gmm import CovarGMM, CovarGMMConfig
from curricula.dr import DomainRandomization, DRConfig
from curricula.dred import DRED, DREDConfig
from curricula.plr import PLR, PLRConfig
from curricula.random_teacher import RandomConfig, RandomTeacher
from curricula.riac import RIAC, RIACConfig

TEACHERS: dict[str, tuple[type[LevelTeacherConfig], type[LevelTeacher]]] = {
    "random": (RandomConfig, RandomTeacher),
    "alp_gmm": (ALPGMMConfig, ALPGMM),
    "covar_gmm": (CovarGMMConfig, CovarGMM),
    "riac": (RIACConfig, RIAC),
    "dr": (DRConfig, DomainRandomization),
    "plr": (PLRConfig, PLR),
    "dred": (DREDConfig, DRED),
}


def make_teacher(cfg: LevelTeacherConfig, low: Any = None, high: Any = None, seed: int = 0) -> LevelTeacher:
    """The teacher named by ``cfg.name``: over the box [low, high] for box teachers; maze teachers take no box."""
    if cfg.name not in TEACHERS:
        raise ValueError(f"unknown teacher {cfg.name!r}; choose one of: {', '.join(TEACHERS)}")
    teacher_cls = TEACHERS[cfg.name][1]
    if teacher_cls.level_kind == "box":
        if low is None or high is None:
            raise ValueError(f"teacher {cfg.name} makes box levels and needs the box (low, high)")
        return teacher_cls(cfg, low, high, seed)
    if low is not None or high is not None:
        raise ValueError(f"teacher {cfg.name} makes {teacher_cls.level_kind} levels and takes no box")
    return teacher_cls(cfg, seed)


__all__ = ["TEACHERS", "BoxTeacher", "BoxTeacherConfig", "LevelTeacher", "LevelTeacherConfig", "Teacher",
           "TeacherConfig", "check_bounds", "make_teacher"]
