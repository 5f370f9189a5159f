"""The runner-side curriculum hook: teacher levels reach every episode, returns reach the teacher."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest

from agents.random_agent import RandomAgent
from agents.random_agent import RandomConfig as RandomAgentConfig
from curricula import make_teacher
from curricula.random_teacher import RandomConfig
from envs import AUTORESET_MODE, EnvSpec
from runners.curriculum import CurriculumDriver, build_teacher
from runners.rollout import EpisodeTracker, collect_step


class LevelEcho(gym.Env):
    """Episodes of ``length`` steps whose every reward is the level's first parameter."""

    observation_space = gym.spaces.Box(-1.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 3):
        self.length = length
        self.next_level = None
        self.level = None
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "level" in options:
            self.level = np.asarray(options["level"], dtype=np.float64)
        elif self.next_level is not None:
            self.level = np.asarray(self.next_level, dtype=np.float64)
        else:
            self.level = self.np_random.uniform(0, 1, size=1)
        self.t = 0
        return self.level.astype(np.float32), {"level": self.level.copy()}

    def step(self, action):
        self.t += 1
        return (self.level.astype(np.float32), float(self.level[0]), False, self.t >= self.length,
                {"level": self.level.copy()})


@dataclass
class EchoSpec(EnvSpec):
    name: str = "echo"

    def make(self, render_mode=None, **overrides):
        return LevelEcho()

    def level_bounds(self):
        return [0.0], [1.0]


class RecordingTeacher:
    """Wraps a real teacher and records what it was told."""

    def __init__(self, inner):
        self.inner, self.updates = inner, []

    def sample(self, n):
        return self.inner.sample(n)

    def update(self, levels, scores):
        self.updates += list(zip([float(lv[0]) for lv in levels], scores))
        self.inner.update(levels, scores)


def test_every_episode_plays_a_teacher_level_and_reports_its_return():
    num_envs, length = 3, 3
    teacher = RecordingTeacher(make_teacher(RandomConfig(), [0.0], [1.0], seed=0))
    driver = CurriculumDriver(teacher, num_envs)
    envs = gym.vector.SyncVectorEnv([LevelEcho for _ in range(num_envs)], autoreset_mode=AUTORESET_MODE)
    agent = RandomAgent(RandomAgentConfig(), envs.single_observation_space, envs.single_action_space,
                        num_envs, None)
    tracker = EpisodeTracker(num_envs)
    obs, _ = driver.reset(envs, seed=0)
    first_levels = obs[:, 0].copy()
    for _ in range(4 * length):
        obs, _, info = collect_step(agent, envs, obs, True, tracker)
        finished = tracker.drain()
        driver.on_step(envs, info, [(i, r) for i, r, _ in finished], None)
    # 4 episodes per env, each scored with the return its level produced (reward = level per step).
    assert len(teacher.updates) == 4 * num_envs
    for level, score in teacher.updates:
        assert score == pytest.approx(length * level, rel=1e-5)
    # The first episodes played the levels given at reset; later ones the queued next levels.
    np.testing.assert_allclose(sorted(first_levels), sorted(u[0] for u in teacher.updates[:num_envs]), rtol=1e-6)
    assert len({round(u[0], 6) for u in teacher.updates}) == 4 * num_envs  # fresh level every episode
    envs.close()


def test_curriculum_needs_a_levelled_env():
    from runners.config import ConfigError, compose_config

    cfg = compose_config(["curriculum=alp_gmm", "env=pointmaze"])
    with pytest.raises(ConfigError, match="needs a level-parameterised env"):
        build_teacher(cfg, EnvSpec(name="pointmaze"))


def test_cli_curriculum_run_logs_teacher_and_resumes(tmp_path, capsys):
    from runners.checkpoint import latest_checkpoint, load_checkpoint
    from runners.cli import run_main
    from runners.logger import read_scalars

    run_dir = tmp_path / "run"
    args = ["agent=random", "env=bipedal", "curriculum=alp_gmm", "env.max_episode_steps=40", "runner.num_envs=2",
            "eval.episodes=1", "eval.every=200", "log_every=100", "progress=false", f"run_dir={run_dir}"]
    assert run_main(args + ["steps=400"]) == 0, capsys.readouterr().err
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["curriculum"]["episodes"] == state["episodes"] >= 10  # every finished episode reported
    tags = {r["tag"] for r in read_scalars(run_dir)}
    assert {"curriculum/mean_alp", "curriculum/teacher_episodes"} <= tags
    assert list((run_dir / "curriculum").glob("levels_step*.png"))
    assert run_main(args + ["steps=800"]) == 0, capsys.readouterr().err
    resumed = load_checkpoint(latest_checkpoint(run_dir))
    assert resumed["step"] == 800
    assert resumed["curriculum"]["episodes"] == resumed["episodes"] > state["episodes"]
