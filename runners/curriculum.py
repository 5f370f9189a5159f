"""The runner side of curricula: a teacher picks the level of every episode the student plays.

The teacher never sees the student: it gets (level played, score) pairs and answers with levels. Levels
reach the envs through the Levels convention (``envs.base``): the first episodes through
``reset(options={"level": ...})`` per env, later ones, which start inside the vector env's autoreset,
through each env's ``next_level`` attribute, set one episode ahead. The level an episode really played is
read back from its final ``info["level"]``, so the teacher is updated with what was played even if an env
fell back to its own default (e.g. after a rollout worker restart).

Level kinds. A teacher declares the kind of level it produces (``LevelTeacher.level_kind``: ``box`` for a
parameter vector in a box, ``maze`` for an encoded maze layout) and an env family the kind it plays
(``EnvSpec.level_kind()``); ``build_teacher`` refuses a mismatch and gives each teacher what its kind needs
(the box and the return range for box teachers; maze teachers build their own level generators from
``envs``), and lets the config fill its run-length defaults (``LevelTeacherConfig.fit_to_run``).

Scores (``LevelTeacher.score_kind``). ``return`` scores are the episodic returns, reported as soon as an
episode ends. Value-loss scores (PLR, DRED: ``pvl``, ``l1vl``, ``maxmc``, see ``curricula.base``) come from
the student's rollout statistics: a ``ScoredStudent`` (``agents.base``; PPO) publishes, after every update,
the per-env, per-step GAE advantages and values of the rollout it learnt from (``last_rollout_stats``). Episodes span rollout boundaries, so
``EpisodeScorer`` accumulates each env's steps across rollouts and reports an episode once it has ended
*and* the advantages of all its steps are known (after the update of the rollout it ended in). Each step's
advantage is the one computed in its own rollout (bootstrapped at the rollout's end with that policy's
value), as the reference code (dcd) merges partial-episode scores weighted by their step counts.

Evaluation-only episodes. A teacher may ask that the student not learn from some episodes
(``LevelTeacher.sample_for_training``: robust PLR's and DRED's new levels). The driver keeps that flag per env for the
running episode and the queued one, and passes it to the student (``set_learning_mask``) whenever an
episode starts, so PPO masks those transitions out of its losses while still computing their advantages.

A teacher outside the ``LevelTeacher`` frame that implements only the teacher contract (``sample``,
``update(levels, scores)``) is driven too: scored by returns, every episode learnt from.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents import Agent
from agents.base import ScoredStudent
from curricula import TEACHERS, LevelTeacher, make_teacher
from curricula.base import SCORE_KINDS
from envs import EnvSpec
from runners.config import ConfigError
from runners.rollout import reset_with_levels

# Score kinds computed from the student's rollout statistics rather than from returns.
VALUE_SCORES = ("pvl", "l1vl", "maxmc")


def env_level_kind(spec: EnvSpec) -> str | None:
    """The kind of level an env family plays (``EnvSpec.level_kind()``), None for an env without levels."""
    return spec.level_kind()


def build_teacher(cfg: DictConfig, spec: EnvSpec) -> LevelTeacher | None:
    """The configured teacher for the env's levels, or None for ``curriculum=none``."""
    name = cfg.curriculum.name
    if name == "none":
        return None
    teacher_cls = TEACHERS[name][1]
    env_kind = env_level_kind(spec)
    if env_kind is None:
        raise ConfigError(f"curriculum={name} needs a level-parameterised env; env {spec.describe()} has no levels")
    if env_kind != teacher_cls.level_kind:
        fitting = sorted(n for n, (_, cls) in TEACHERS.items() if cls.level_kind == env_kind)
        raise ConfigError(f"curriculum={name} makes {teacher_cls.level_kind} levels but env {spec.describe()} plays "
                          f"{env_kind} levels; choose one of: {', '.join(fitting)}")
    teacher_cfg = OmegaConf.to_object(cfg.curriculum)
    try:
        if env_kind == "box":
            bounds = spec.level_bounds()
            if teacher_cfg.score_low is None and spec.score_range() is not None:
                teacher_cfg.score_low, teacher_cfg.score_high = spec.score_range()
            teacher_cfg.validate()
            return make_teacher(teacher_cfg, bounds[0], bounds[1], seed=int(cfg.seed))
        teacher_cfg.fit_to_run(int(cfg.steps))
        teacher_cfg.validate()
        return make_teacher(teacher_cfg, seed=int(cfg.seed))
    except ValueError as exc:
        raise ConfigError(f"curriculum {name}: {exc}") from None


class EpisodeScorer:
    """Value-loss scores of finished episodes from the student's per-rollout statistics.

    ``episode_finished`` queues an episode that just ended in env ``i`` (with its level, return and length);
    ``consume(stats, rows)`` walks the last ``rows`` vector steps of a rollout, accumulates each env's
    per-step advantages and values, and at each episode end of env ``i`` pairs the episode's sums with the
    oldest queued episode of env ``i``. Rows that are not transitions (a lost episode of a crashed worker)
    discard what was accumulated for their env, as the tracker never reports such episodes as finished.
    """

    def __init__(self, num_envs: int, kind: str) -> None:
        if kind not in VALUE_SCORES:
            raise ValueError(f"unknown value score {kind!r}; choose one of: {', '.join(VALUE_SCORES)}")
        self.num_envs, self.kind = num_envs, kind
        self.queued: list[deque[tuple[Any, float, int]]] = [deque() for _ in range(num_envs)]
        # Running sums of the current episode of each env: steps, sum max(A, 0), sum |A|, sum V.
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.positive = np.zeros(num_envs)
        self.absolute = np.zeros(num_envs)
        self.value = np.zeros(num_envs)

    def episode_finished(self, env: int, level: Any, ret: float, length: int) -> None:
        self.queued[env].append((level, float(ret), int(length)))

    def score(self, env: int, ret: float) -> float:
        n = max(int(self.steps[env]), 1)
        if self.kind == "pvl":
            return float(self.positive[env] / n)
        if self.kind == "l1vl":
            return float(self.absolute[env] / n)
        return float(ret - self.value[env] / n)  # maxmc with this episode's own return (see curricula.base)

    def _clear(self, env: int) -> None:
        self.steps[env] = 0
        self.positive[env] = self.absolute[env] = self.value[env] = 0.0

    def consume(self, stats: Any, rows: int) -> list[tuple[Any, float, float, int]]:
        """(level, score, return, length) of every queued episode whose last step is in these rows."""
        scored = []
        first = len(stats.advantages) - min(int(rows), len(stats.advantages))
        for t in range(first, len(stats.advantages)):
            adv, values = stats.advantages[t], stats.values[t]
            for i in range(self.num_envs):
                if not stats.valid[t, i]:
                    self._clear(i)
                    continue
                self.steps[i] += 1
                self.positive[i] += max(float(adv[i]), 0.0)
                self.absolute[i] += abs(float(adv[i]))
                self.value[i] += float(values[i])
                if stats.episode_end[t, i]:
                    if self.queued[i]:
                        level, ret, length = self.queued[i].popleft()
                        scored.append((level, self.score(i, ret), ret, length))
                    self._clear(i)
        return scored


class CurriculumDriver:
    """Keeps one pending level per env and feeds finished episodes back to the teacher."""

    def __init__(self, teacher: LevelTeacher, num_envs: int, student: Agent | None = None) -> None:
        self.teacher = teacher
        # The student is only read for the scores it publishes (PPO's ``last_rollout_stats``) and told which
        # episodes it may learn from; the teacher itself never sees it.
        self.student = student
        self.num_envs = num_envs
        self.pending: list[Any] = []
        self.episodes = 0  # episodes reported to the teacher
        # Teachers implementing only the teacher contract (sample, update) are scored with returns.
        kind = teacher.score_kind if isinstance(teacher, LevelTeacher) else "return"
        if kind not in SCORE_KINDS:
            raise ConfigError(f"curriculum {self._name}: unknown score {kind!r}; choose one of: {', '.join(SCORE_KINDS)}")
        self.scorer: EpisodeScorer | None = None
        if kind in VALUE_SCORES:
            if not isinstance(student, ScoredStudent):
                raise ConfigError(f"curriculum={self._name} scores levels by the student's value loss ({kind}); "
                                  f"agent {self._student_name} publishes no rollout statistics (use agent=ppo)")
            self.scorer = EpisodeScorer(num_envs, kind)
        self._stats_seen: Any = None  # the last rollout statistics consumed (published anew after each update)
        self._rows_since_stats = 0  # vector steps since then: the rows of the next statistics that are ours
        # Whether the student learns from the running episode of each env, and from the queued one.
        self.learning = np.ones(num_envs, dtype=bool)
        self.pending_learning = np.ones(num_envs, dtype=bool)

    @property
    def _name(self) -> str:
        return self.teacher.cfg.name if isinstance(self.teacher, LevelTeacher) else type(self.teacher).__name__

    @property
    def _student_name(self) -> str:
        return self.student.cfg.name if isinstance(self.student, Agent) else type(self.student).__name__

    @property
    def _masking(self) -> bool:
        """Whether the student has been told to skip some episodes (a mask is in force)."""
        return isinstance(self.student, ScoredStudent) and self.student.learning_mask is not None

    def _sample(self, n: int) -> tuple[list[Any], np.ndarray]:
        """``n`` levels and whether the student learns from each (teachers outside the frame: always)."""
        if not isinstance(self.teacher, LevelTeacher):
            return list(self.teacher.sample(n)), np.ones(n, dtype=bool)
        levels, learning = self.teacher.sample_for_training(n)
        return list(levels), np.array(learning, dtype=bool).reshape(n)

    # ----------------------------------------------------------------- the loop's hooks
    def reset(self, envs, seed: int):
        """First episodes on teacher levels, and the next level of every env queued."""
        levels, self.learning = self._sample(self.num_envs)
        obs, info = reset_with_levels(envs, seed, levels)
        self.pending, self.pending_learning = self._sample(self.num_envs)
        envs.set_attr("next_level", list(self.pending))
        self._tell_student()
        if self.scorer is not None:  # episodes in flight before a resume are gone; so are their sums
            self.scorer = EpisodeScorer(self.num_envs, self.scorer.kind)
            self._stats_seen = self.student.last_rollout_stats
            self._rows_since_stats = 0
        return obs, info

    def on_step(self, envs, info: dict[str, Any], finished: list[tuple[int, float]] | list[tuple[int, float, int]],
                dropped: np.ndarray | None) -> None:
        """``finished``: (env index, return[, length]) of episodes that ended this step."""
        final_info = info.get("final_info", {})
        has_level = final_info.get("_level", np.ones(self.num_envs, bool)) if "level" in final_info else None
        played = []  # (env, level or None, return, length)
        for entry in finished:
            i, ret = int(entry[0]), float(entry[1])
            length = int(entry[2]) if len(entry) > 2 else 0
            level = np.asarray(final_info["level"][i]) if has_level is not None and has_level[i] else None
            played.append((i, level, ret, length))
        if self.scorer is None:  # returns are the scores: report at once, with the contract's two arguments
            returned = [(lv, ret) for _, lv, ret, _ in played if lv is not None]
            if returned:
                self.teacher.update([lv for lv, _ in returned], [ret for _, ret in returned])
                self.episodes += len(returned)
        else:
            for i, level, ret, length in played:
                self.scorer.episode_finished(i, level, ret, length)
            self._score_new_rollout()
        if not played and (dropped is None or not dropped.any()):
            return
        # Every env whose queued level was just consumed (an episode ended, or its worker was replaced and
        # lost the queue) gets a fresh one; the whole list is re-sent because set_attr is per vector.
        for i, *_ in played:
            self.learning[i] = self.pending_learning[i]
        refresh = [i for i, *_ in played]
        if dropped is not None:
            lost = [int(i) for i in np.flatnonzero(dropped)]
            self.learning[lost] = True  # a replaced worker's env plays its own default level
            refresh += lost
        levels, learning = self._sample(len(refresh))
        for i, level, learn in zip(refresh, levels, learning):
            self.pending[i] = level
            self.pending_learning[i] = learn
        envs.set_attr("next_level", list(self.pending))
        self._tell_student()

    # ----------------------------------------------------------------- scores
    def _score_new_rollout(self) -> None:
        """Score the episodes whose steps' advantages the student has just published."""
        self._rows_since_stats += 1
        stats = self.student.last_rollout_stats  # a ScoredStudent: checked when the scorer was made
        if stats is None or stats is self._stats_seen:
            return
        scored = [entry for entry in self.scorer.consume(stats, self._rows_since_stats) if entry[0] is not None]
        self._stats_seen, self._rows_since_stats = stats, 0
        if scored:
            levels, scores, returns, lengths = (list(column) for column in zip(*scored))
            self.teacher.update(levels, scores, returns=returns, lengths=lengths)
            self.episodes += len(levels)

    def _tell_student(self) -> None:
        if self.learning.all() and not self._masking:
            return  # nothing masked yet: students without the hook (random, SAC) keep working
        if not isinstance(self.student, ScoredStudent):
            raise ConfigError(f"curriculum={self._name} plays evaluation-only episodes but agent {self._student_name} "
                              "cannot skip learning from them (use agent=ppo)")
        self.student.set_learning_mask(self.learning)

    # ----------------------------------------------------------------- state and reports
    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict(), "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.episodes = int(state["episodes"])

    def log_scalars(self) -> dict[str, float]:
        scalars = {**self.teacher.log_scalars(), "teacher_episodes": self.episodes}
        if not self.learning.all() or self._masking:
            scalars["learning_envs"] = float(self.learning.mean())
        return scalars

    def plot(self, run_dir: Path, step: int) -> Path:
        folder = Path(run_dir) / "curriculum"
        folder.mkdir(exist_ok=True)
        path = folder / f"levels_step{step:010d}.png"
        self.teacher.plot(path)
        return path


__all__ = ["TEACHERS", "CurriculumDriver", "EpisodeScorer", "build_teacher", "env_level_kind"]
