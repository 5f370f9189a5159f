"""Prioritised Level Replay (curricula/plr.py, curricula/level_buffer.py), the runner's value-loss scores
(runners/curriculum.py) and PPO's evaluation-only episodes (agents/ppo.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import saved_and_loaded

from agents.base import Transition
from agents.ppo import PPOAgent, PPOConfig
from curricula import TEACHERS, make_teacher
from curricula.level_buffer import LevelBuffer, rank_weights, replay_distribution, staleness_weights
from curricula.plr import PLR, PLRConfig
from envs import AUTORESET_MODE, EnvSpec
from runners.curriculum import CurriculumDriver, EpisodeScorer
from runners.rollout import EpisodeTracker, collect_step

CPU = torch.device("cpu")


def int_levels(rng: np.random.Generator) -> np.ndarray:
    """A generator of integer levels [k, k % 3] (k practically never repeats), for PLR without the maze env;
    like the maze env's, it draws from the teacher's generator only."""
    k = int(rng.integers(0, 2**40))
    return np.array([k, k % 3], dtype=np.int64)


def plr(**overrides) -> PLR:
    return PLR(PLRConfig(**overrides), seed=0, generator=int_levels)



# --------------------------------------------------------------------------- the replay distribution
def test_rank_weights_follow_the_formula_with_shared_ranks_and_temperature_as_exponent():
    scores = np.array([0.5, 0.1, 0.9, 0.1, 0.0])
    beta = 0.5
    ranks = np.array([2, 3, 1, 3, 5])  # the two 0.1 share rank 3; nothing is ranked 0
    expected = (1 / ranks) ** (1 / beta)
    np.testing.assert_allclose(rank_weights(scores, beta), expected / expected.sum())
    # Temperature as an exponent: a lower temperature sharpens, it does not rescale away.
    assert rank_weights(scores, 0.1)[2] > rank_weights(scores, 1.0)[2] > 0.2
    np.testing.assert_allclose(rank_weights(scores, 1.0), (1 / ranks) / (1 / ranks).sum())
    # All tied (e.g. unsolved levels, all scores 0): uniform, finite.
    np.testing.assert_allclose(rank_weights(np.zeros(4), 0.3), np.full(4, 0.25))
    assert rank_weights(np.array([]), 0.3).size == 0
    with pytest.raises(ValueError, match="temperature"):
        rank_weights(scores, 0.0)


def test_replay_distribution_mixes_rank_and_staleness_with_rho():
    scores, staleness = np.array([3.0, 1.0, 2.0]), np.array([0.0, 6.0, 2.0])
    rank_part = np.array([1, 1 / 3, 1 / 2]) ** (1 / 0.3)
    expected = 0.7 * rank_part / rank_part.sum() + 0.3 * staleness / staleness.sum()
    np.testing.assert_allclose(replay_distribution(scores, staleness, 0.3, 0.3), expected)
    np.testing.assert_allclose(staleness_weights(np.zeros(3)), np.full(3, 1 / 3))


# --------------------------------------------------------------------------- the PLR teacher
def fill(teacher: PLR, scores) -> list[np.ndarray]:
    """Hand out and score one new level per score."""
    levels = teacher.sample(len(scores))
    teacher.update(levels, scores, returns=np.zeros(len(scores)), lengths=np.full(len(scores), 10))
    return levels


def test_a_level_not_replayed_for_long_gains_probability():
    teacher = plr(buffer_size=4, warm_fraction=1.0)
    fill(teacher, [0.9, 0.5, 0.3, 0.1])
    teacher.buffer.last_sampled[3] = 0  # level 3 (the lowest score) was last sampled at the start
    history = []
    for now in (100, 150, 300, 1000):
        teacher.samples = now
        teacher.buffer.last_sampled[:3] = now - 10  # the others are replayed all the time
        history.append(teacher.replay_weights()[3])
    assert all(a < b for a, b in itertools.pairwise(history))
    rank_part = (1 / np.arange(1, 5)) ** (1 / 0.3)
    assert history[-1] == pytest.approx(0.7 * rank_part[3] / rank_part.sum() + 0.3 * 1000 / 1030)


def test_replay_probability_and_warm_up_are_respected():
    teacher = plr(buffer_size=10, warm_fraction=0.5, replay_prob=0.3)
    fill(teacher, [0.1, 0.2, 0.3, 0.4])  # 4 < 5 levels: cold, every level is new
    levels, learn = teacher.sample_for_training(200)
    assert all(teacher.buffer.find(level) is None for level in levels) and learn.all()
    fill(teacher, [0.5])  # now half full: warm
    levels, learn = teacher.sample_for_training(4000)
    replayed = np.array([teacher.buffer.find(level) is not None for level in levels])
    assert replayed.mean() == pytest.approx(0.3, abs=0.03)
    assert learn.all()  # plain PLR learns from new levels too


def test_robust_plr_marks_new_levels_as_evaluation_only():
    teacher = plr(buffer_size=4, warm_fraction=1.0, replay_prob=0.5, robust=True)
    fill(teacher, [0.4, 0.3, 0.2, 0.1])
    levels, learn = teacher.sample_for_training(500)
    replayed = np.array([teacher.buffer.find(level) is not None for level in levels])
    np.testing.assert_array_equal(learn, replayed)
    assert 0.4 < replayed.mean() < 0.6


def test_full_buffer_replaces_its_least_likely_level_only_with_a_better_score():
    teacher = plr(buffer_size=3, warm_fraction=1.0, staleness_coef=0.0, replay_prob=0.0)
    kept = fill(teacher, [0.5, 0.2, 0.8])
    fill(teacher, [0.1])  # below every score: rejected
    assert teacher.rejected == 1 and len(teacher.buffer) == 3
    new = fill(teacher, [0.3])  # beats the weakest (0.2), which goes
    assert teacher.buffer.find(kept[1]) is None and teacher.buffer.find(new[0]) is not None
    assert sorted(teacher.buffer.scores[:3]) == pytest.approx([0.3, 0.5, 0.8])


def test_scores_of_a_replayed_level_are_replaced_and_maxmc_uses_the_best_return():
    teacher = plr(score="maxmc", buffer_size=8)
    (level,) = teacher.sample(1)
    # The runner reports mean_t (R - V_t) with the episode's own return R.
    teacher.update([level], [0.25], returns=[1.0], lengths=[4])
    slot = teacher.buffer.find(level)
    assert teacher.buffer.scores[slot] == pytest.approx(0.25) and teacher.buffer.max_returns[slot] == 1.0
    teacher.update([level], [-0.1], returns=[0.4], lengths=[4])  # worse episode: R_max - R = 0.6 is added
    assert teacher.buffer.scores[slot] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs the episodes' returns"):
        teacher.update([level], [0.1])


def test_plr_state_dict_round_trip_samples_identically():
    original = plr(buffer_size=20, warm_fraction=0.5, robust=True)
    rng = np.random.default_rng(0)
    for _ in range(10):
        levels = original.sample(8)
        original.update(levels, rng.random(8), returns=rng.random(8), lengths=np.full(8, 5))
    restored = PLR(PLRConfig(buffer_size=20, warm_fraction=0.5, robust=True), seed=7, generator=int_levels)
    restored.load_state_dict(saved_and_loaded(original.state_dict()))
    a_levels, a_learn = original.sample_for_training(30)
    b_levels, b_learn = restored.sample_for_training(30)
    assert all(np.array_equal(a, b) for a, b in zip(a_levels, b_levels)) and np.array_equal(a_learn, b_learn)
    assert original.log_scalars() == restored.log_scalars()


def test_buffer_state_and_protected_levels():
    buffer = LevelBuffer(3)
    buffer.put([1, 2], protected=True)
    buffer.put([3, 4])
    buffer.scores[:2] = [0.5, 0.25]
    with pytest.raises(ValueError, match="protected"):
        buffer.put([5, 6], slot=0)
    clone = LevelBuffer(3)
    clone.load(saved_and_loaded(buffer.state()))
    assert clone.find([3, 4]) == 1 and clone.protected[0] and clone.scores[1] == 0.25


def test_maze_teachers_are_registered_with_checked_configs():
    assert {"dr", "plr", "dred"} <= set(TEACHERS)
    assert all(TEACHERS[name][1].level_kind == "maze" for name in ("dr", "plr", "dred"))
    with pytest.raises(ValueError, match="unknown score"):
        make_teacher(PLRConfig(score="regret"), seed=0)
    with pytest.raises(ValueError, match="replay_prob"):
        make_teacher(PLRConfig(replay_prob=1.5), seed=0)
    with pytest.raises(ValueError, match="takes no box"):
        make_teacher(PLRConfig(), [0.0], [1.0], seed=0)


# --------------------------------------------------------------------------- scores from the student's rollouts
def test_episode_scores_from_hand_made_rollouts_across_a_rollout_boundary():
    # Two rollouts of 3 steps, 2 envs. Env 0: episode A ends at t=1 of rollout 1, episode B spans the
    # boundary (t=2 of rollout 1, t=0..1 of rollout 2). Env 1: its episode is lost with a dropped row.
    def stats(adv, values, end, valid):
        return SimpleNamespace(advantages=np.array(adv, float), values=np.array(values, float),
                               episode_end=np.array(end, bool), valid=np.array(valid, bool))

    first = stats([[0.5, 1.0], [-1.0, 1.0], [2.0, 1.0]], [[1.0, 0.0], [3.0, 0.0], [0.5, 0.0]],
                  [[False, False], [True, False], [False, True]], [[True, True], [True, True], [True, False]])
    second = stats([[-0.5, 0.3], [0.5, 0.6], [0.0, 0.0]], [[0.25, 0.1], [0.25, 0.2], [0.0, 0.0]],
                   [[False, False], [True, True], [False, False]], [[True, True], [True, True], [True, True]])
    for kind, score_a, score_b in (("pvl", 0.25, 2.5 / 3), ("l1vl", 0.75, 3.0 / 3), ("maxmc", 1.0 - 2.0, 2.0 - 1.0 / 3)):
        scorer = EpisodeScorer(2, kind)
        scorer.episode_finished(0, "A", 1.0, 2)
        assert scorer.consume(first, 3) == [("A", pytest.approx(score_a), 1.0, 2)]
        scorer.episode_finished(0, "B", 2.0, 3)
        scorer.episode_finished(1, "C", 0.0, 2)  # env 1's episode after the dropped row: rows 0..1 of rollout 2
        scored = scorer.consume(second, 3)
        assert scored[0] == ("B", pytest.approx(score_b), 2.0, 3)
        assert scored[1][0] == "C" and scored[1][1] == pytest.approx({"pvl": 0.45, "l1vl": 0.45, "maxmc": -0.15}[kind])


def test_only_the_rows_since_the_last_statistics_are_scored():
    stats = SimpleNamespace(advantages=np.array([[9.0], [1.0], [3.0]]), values=np.zeros((3, 1)),
                            episode_end=np.array([[False], [False], [True]]), valid=np.ones((3, 1), bool))
    scorer = EpisodeScorer(1, "l1vl")
    scorer.episode_finished(0, "level", 0.0, 2)
    assert scorer.consume(stats, rows=2) == [("level", 2.0, 0.0, 2)]  # row 0 predates a resume: not ours


# --------------------------------------------------------------------------- PPO without gradients on new levels
def transition(n, rng, obs, action):
    return Transition(obs, action, rng.normal(size=n).astype(np.float32), obs, np.zeros(n, bool), np.zeros(n, bool))


def test_ppo_takes_no_gradient_from_masked_rows_but_still_scores_them():
    torch.manual_seed(0)
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    agent = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[16]), space, gym.spaces.Discrete(3), 2, CPU)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    rng = np.random.default_rng(0)
    agent.set_learning_mask(np.zeros(2, bool))
    for _ in range(4):
        obs = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        metrics = agent.observe(transition(2, rng, obs, agent.act(obs)))
    assert metrics == {"learn_fraction": 0.0} and agent.updates == 1
    assert all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    stats = agent.last_rollout_stats
    assert not stats.learn.any() and np.abs(stats.advantages).sum() > 0  # advantages computed for scoring
    agent.set_learning_mask(np.array([True, False]))
    for _ in range(4):
        obs = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        metrics = agent.observe(transition(2, rng, obs, agent.act(obs)))
    assert metrics["learn_fraction"] == 0.5
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    with pytest.raises(ValueError, match="2 envs"):
        agent.set_learning_mask(np.ones(3, bool))


class IntLevelEcho(gym.Env):
    """Episodes of 3 steps on integer levels [k, k % 3]; reward 1 on the last step when k % 3 == 0."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.next_level, self.level, self.t = None, None, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and options.get("level") is not None:
            self.level = np.asarray(options["level"], np.int64)
        elif self.next_level is not None:
            self.level, self.next_level = np.asarray(self.next_level, np.int64), None
        else:
            self.level = np.array([-3, 0], np.int64)
        self.t = 0
        return self._obs(), {"level": self.level}

    def _obs(self):
        return np.array([self.level[1] / 3, self.t / 3], np.float32)

    def step(self, action):
        self.t += 1
        done = self.t >= 3
        reward = float(done and self.level[1] == 0)
        return self._obs(), reward, False, done, {"level": self.level}


@dataclass
class IntLevelSpec(EnvSpec):
    name: str = "int_levels"

    def level_kind(self):
        return "maze"

    def make(self, render_mode=None, **overrides):
        return IntLevelEcho()


def test_robust_plr_through_the_driver_skips_gradients_until_levels_are_replayed():
    torch.manual_seed(0)
    num_envs = 2
    envs = gym.vector.SyncVectorEnv([IntLevelEcho for _ in range(num_envs)], autoreset_mode=AUTORESET_MODE)
    agent = PPOAgent(PPOConfig(n_steps=6, hidden_sizes=[8]), envs.single_observation_space,
                     envs.single_action_space, num_envs, CPU)
    teacher = PLR(PLRConfig(buffer_size=6, warm_fraction=1.0, replay_prob=1.0, robust=True, score="l1vl"),
                  seed=0, generator=int_levels)
    driver = CurriculumDriver(teacher, num_envs, student=agent)
    tracker = EpisodeTracker(num_envs)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    obs, _ = driver.reset(envs, seed=0)
    assert not agent.learning_mask.any()  # cold buffer: new levels only, evaluation only
    for _ in range(6):  # one rollout: 2 episodes per env, all on new levels
        obs, _, info = collect_step(agent, envs, obs, True, tracker)
        driver.on_step(envs, info, tracker.drain(), None)
    assert agent.updates == 1 and all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    assert driver.episodes == 4 and len(teacher.buffer) == 4  # scored from the published advantages
    for _ in range(12):  # the buffer fills (6 levels), then every level is a replay, learnt from
        obs, _, info = collect_step(agent, envs, obs, True, tracker)
        driver.on_step(envs, info, tracker.drain(), None)
    assert teacher.warm and agent.learning_mask.all()
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    assert driver.log_scalars()["learning_envs"] == 1.0
    envs.close()


def test_value_scores_need_a_student_that_publishes_rollout_statistics():
    from agents.random_agent import RandomAgent
    from agents.random_agent import RandomConfig as RandomAgentConfig
    from runners.config import ConfigError

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    student = RandomAgent(RandomAgentConfig(), space, gym.spaces.Discrete(2), 1, None)
    with pytest.raises(ConfigError, match="use agent=ppo"):
        CurriculumDriver(plr(), 1, student=student)


def test_build_teacher_matches_level_kinds():
    from runners.config import ConfigError, compose_config
    from runners.curriculum import build_teacher

    cfg = compose_config(["curriculum=plr", "env=bipedal"])
    with pytest.raises(ConfigError, match="makes maze levels but env .*bipedal.* plays box levels"):
        build_teacher(cfg, cfg_env(cfg))
    cfg = compose_config(["curriculum=alp_gmm", "env=bipedal"])
    with pytest.raises(ConfigError, match="choose one of: .*plr"):
        build_teacher(cfg, IntLevelSpec())
    assert isinstance(build_teacher(compose_config(["curriculum=plr"]), IntLevelSpec()), PLR)


def cfg_env(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg.env)


def test_domain_randomisation_draws_maze_levels_and_round_trips(tmp_path):
    from curricula.dr import DomainRandomization, DRConfig
    from envs.maze import decode

    teacher = DomainRandomization(DRConfig(), seed=0)
    empty = saved_and_loaded(teacher.state_dict())  # nothing played yet
    levels, learn = teacher.sample_for_training(6)
    assert learn.all() and all(decode(level).cells.shape == (13, 13) for level in levels)
    teacher.update(levels, [0.0, 0.5, 0.0, 0.9, 0.0, 0.0])  # DR scores are returns
    assert teacher.log_scalars()["solve_rate"] == pytest.approx(2 / 6)
    restored = DomainRandomization(DRConfig(), seed=1)
    restored.load_state_dict(saved_and_loaded(teacher.state_dict()))
    assert all(np.array_equal(a, b) for a, b in zip(teacher.sample(5), restored.sample(5)))
    fresh = DomainRandomization(DRConfig(), seed=1)
    fresh.load_state_dict(empty)
    assert fresh.episodes == 0
    teacher.plot(tmp_path / "dr.png")
    assert (tmp_path / "dr.png").read_bytes()[:4] == b"\x89PNG"


def test_ppo_checkpoint_loads_into_an_agent_for_another_number_of_envs():
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    trained = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[8]), space, gym.spaces.Discrete(3), 8, CPU)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (8, 4)).astype(np.float32)
    trained.observe(transition(8, rng, obs, trained.act(obs)))  # mid-rollout
    evaluator = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[8]), space, gym.spaces.Discrete(3), 1, CPU)
    evaluator.load_state_dict(saved_and_loaded(trained.state_dict()))  # as rl-eval does
    assert evaluator.rollout.step == 0
    np.testing.assert_array_equal(evaluator.act(obs[:1], deterministic=True), trained.act(obs[:1], deterministic=True))
