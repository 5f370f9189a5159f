"""The phased trainer: one agent learning through a fixed sequence of offline and online phases.

Methods of kind ``phased`` (``agents.base.PhasedMethod``) declare their phases, e.g. safe RL with minimal
supervision: ``[Phase("offline", "offline", 20_000), Phase("online", "online", None)]``. The run's step axis
runs through the phases one after another, each in its own unit (gradient steps offline, env steps online),
so ``steps``, the log/eval/checkpoint schedule and the logs' x axis count units of all phases so far; the
current phase is logged as ``train/phase`` (its index). A phase whose budget is ``None`` runs until ``steps``.

``begin_phase(name)`` is called once as each phase starts (the first at step 0). A checkpoint records the
phase index and the step within it; a resumed run continues in that phase at that step without calling
``begin_phase`` again (the agent's own state dict carries whatever the phase set up). Online phases step
the envs with everything the online trainer has (observers, extras, curricula); the envs are reset as the
first online phase starts, or at resume if the run resumes inside one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from omegaconf import DictConfig

from agents.base import Phase, PhasedMethod, require_contract
from envs import EnvSpec
from runners.config import ConfigError
from runners.logger import Logger
from runners.trainers.offline import read_run_dataset
from runners.trainers.online import OnlineTrainer

PHASE_MODES = ("offline", "online")


def phase_bounds(phases: list[Phase], total_steps: int) -> list[tuple[int, int]]:
    """(first step, end step) of each phase on the run's step axis."""
    bounds, start = [], 0
    for k, phase in enumerate(phases):
        if phase.mode not in PHASE_MODES:
            raise ConfigError(f"phase {phase.name!r} has mode {phase.mode!r}; choose one of: {', '.join(PHASE_MODES)}")
        if phase.steps is None and k != len(phases) - 1:
            raise ConfigError(f"phase {phase.name!r} runs until steps= but is not the last phase")
        end = total_steps if phase.steps is None else start + int(phase.steps)
        bounds.append((start, end))
        start = end
    return bounds


class PhasedTrainer(OnlineTrainer):
    kind: ClassVar[str] = "phased"

    def __init__(self, cfg: DictConfig, spec: EnvSpec, device: torch.device) -> None:
        super().__init__(cfg, spec, device)
        require_contract(self.agent, PhasedMethod, "the phased trainer", ConfigError)
        self.phases = list(self.agent.phases())
        if not self.phases:
            raise ConfigError(f"agent {cfg.agent.name} declares no phases")
        self.bounds = phase_bounds(self.phases, int(cfg.steps))
        self.total_steps = self.bounds[-1][1]
        if any(p.mode == "offline" for p in self.phases):
            self.agent.set_dataset(read_run_dataset(cfg, spec), str(cfg.dataset))
        self.phase = 0
        self.envs_ready = False

    def phase_at(self, step: int) -> int:
        """The index of the phase that the unit after ``step`` belongs to."""
        for k, (_, end) in enumerate(self.bounds):
            if step < end:
                return k
        return len(self.phases) - 1

    def check_resume(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("phase")
        if saved is not None and saved["name"] != self.phases[int(saved["index"])].name:
            raise ConfigError(f"the checkpoint is in phase {saved['name']!r}, but this method's phase "
                              f"{int(saved['index'])} is {self.phases[int(saved['index'])].name!r}; use another run_dir")

    def start(self, checkpoint: dict[str, Any] | None, logger: Logger) -> None:
        self.logger = logger
        self.checkpoint = checkpoint
        self.phase = self.phase_at(self.step)
        if checkpoint is None:
            self.agent.begin_phase(self.phases[0].name)
        if self.phases[self.phase].mode == "online":
            self._start_envs()

    def _start_envs(self) -> None:
        super().start(self.checkpoint, self.logger)
        self.envs_ready = True

    def advance(self) -> None:
        phase = self.phases[self.phase]
        if phase.mode == "offline":
            self.metrics.update(self.agent.gradient_step())
            self.step += 1
        else:
            super().advance()
        if self.step >= self.bounds[self.phase][1] and self.phase + 1 < len(self.phases):
            self.phase += 1
            self.agent.begin_phase(self.phases[self.phase].name)
            if self.phases[self.phase].mode == "online" and not self.envs_ready:
                self._start_envs()

    def log_scalars(self, rate: float) -> dict[str, float]:
        if self.envs_ready:
            scalars = super().log_scalars(rate)
        else:
            scalars, self.metrics = {**self.metrics, "steps_per_second": rate}, {}
        return {**scalars, "phase": float(self.phase)}

    def state_dict(self) -> dict[str, Any]:
        entries = super().state_dict() if self.envs_ready else {}
        first = self.bounds[self.phase][0]
        return {**entries, "phase": {"index": self.phase, "name": self.phases[self.phase].name,
                                     "step_in_phase": self.step - first}}

    def progress_note(self) -> str:
        return f"{self.phases[self.phase].name} " + super().progress_note()

    def before_checkpoint(self) -> None:
        if self.envs_ready:
            super().before_checkpoint()

    def finish(self) -> None:
        if self.envs_ready:
            super().finish()
