"""Trainers, one per kind of method (``Agent.kind``), each driven by the run shell (``runners.shell``).

| kind         | one unit of work                                   | methods                                  |
|--------------|----------------------------------------------------|------------------------------------------|
| `online`     | one vector step: act, step the envs, observe        | SAC, PPO, METRA/LSD/DIAYN                |
| `offline`    | one gradient step on a dataset                      | HILP, GCBC                               |
| `phased`     | a unit of the current phase (offline or online)     | phased methods (offline, then online)    |
| `population` | one batch of whole episodes of proposed policies    | population methods (ask / tell)          |
| `students`   | one level batch played by every student             | teachers training their own students     |
"""

from __future__ import annotations

from runners.trainers.base import Trainer, build_agent, num_envs_for
from runners.trainers.offline import OfflineTrainer
from runners.trainers.online import OnlineTrainer
from runners.trainers.phased import PhasedTrainer
from runners.trainers.population import PopulationTrainer
from runners.trainers.students import StudentsTrainer

TRAINERS: dict[str, type[Trainer]] = {
    "online": OnlineTrainer,
    "offline": OfflineTrainer,
    "phased": PhasedTrainer,
    "population": PopulationTrainer,
    "students": StudentsTrainer,
}

__all__ = ["TRAINERS", "OfflineTrainer", "OnlineTrainer", "PhasedTrainer", "PopulationTrainer", "StudentsTrainer", "Trainer", "build_agent",
           "num_envs_for"]
