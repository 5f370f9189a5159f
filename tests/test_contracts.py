"""Declared contracts (agents.base protocols, agents.skills) and the teacher frame (curricula.base).

Each registered agent satisfies exactly the contracts it should; runner-side checks reject an agent that
lacks one with a one-line error; checkpoints written in the format before the shared skill bookkeeping
still load; the skill bookkeeping and the teacher frame behave as hand-computed.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import saved_and_loaded

from agents import AGENTS
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
    contract_members,
    require_contract,
)
from agents.gcbc import GCBCAgent, GCBCConfig
from agents.hilp import HILPAgent, HILPConfig
from agents.metra import METRAAgent, METRAConfig
from agents.skills import SkillConditionedAgent, unit_direction
from curricula import TEACHERS, BoxTeacher, LevelTeacher, Teacher, TeacherConfig, make_teacher
from curricula.alp_gmm import ALPGMMConfig
from curricula.base import BoxTeacherConfig
from curricula.dred import DREDConfig
from curricula.maze_teacher import MazeTeacher
from curricula.plr import PLR, PLRConfig
from runners.config import ConfigError
from runners.curriculum import CurriculumDriver

CPU = torch.device("cpu")
OBS = gym.spaces.Box(0.0, 7.0, (2,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
CONTRACTS = (SkillAgent, SkillRepresentation, GoalPrompted, PlanPrompted, RewardPrompted, OfflineLearner, ScoredStudent)
SKILLS = {SkillAgent, SkillRepresentation, GoalPrompted}
# What every registered agent declares: its trainer kind and the contracts it implements (and no others).
EXPECTED: dict[str, tuple[str, set]] = {
    "random": ("online", set()),
    "sac": ("online", set()),
    "ppo": ("online", {ScoredStudent}),
    "metra": ("online", SKILLS),
    "lsd": ("online", SKILLS),
    "diayn": ("online", SKILLS),
    "hilp": ("offline", SKILLS | {PlanPrompted, OfflineLearner}),
    "gcbc": ("offline", SKILLS | {RewardPrompted, OfflineLearner}),
}
SMALL = {"hidden_sizes": [8]}


def build(name: str, num_envs: int = 2) -> Agent:
    cfg_cls, agent_cls = AGENTS[name]
    cfg = cfg_cls()
    for key, value in SMALL.items():
        if hasattr(cfg, key):
            setattr(cfg, key, value)
    agent = agent_cls(cfg, OBS, ACT, num_envs, CPU)
    agent.seed(0)
    return agent


def test_every_registered_agent_has_an_expected_contract_row():
    assert set(AGENTS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_agent_satisfies_its_contracts_and_no_others(name):
    agent = build(name)
    kind, contracts = EXPECTED[name]
    assert agent.kind == kind and kind in METHOD_KINDS
    assert agent.offline == (kind == "offline")
    held = {contract for contract in CONTRACTS if isinstance(agent, contract)}
    assert held == contracts, f"{name}: {sorted(c.__name__ for c in held)}"


def test_contract_members_name_what_the_protocols_ask_for():
    assert contract_members(SkillAgent) == ("skill_dim", "sample_skills", "act_with_skill")
    assert contract_members(OfflineLearner) == ("set_dataset", "gradient_step")
    assert contract_members(ScoredStudent) == ("last_rollout_stats", "learning_mask", "set_learning_mask")


def test_require_contract_rejects_a_missing_contract_in_one_line():
    sac = build("sac")
    with pytest.raises(ValueError) as info:
        require_contract(sac, SkillAgent, "suite 'coverage'")
    message = str(info.value)
    assert message == ("suite 'coverage' needs a SkillAgent agent (skill_dim, sample_skills, act_with_skill); "
                       "agent 'sac' lacks skill_dim, sample_skills, act_with_skill")
    require_contract(build("metra"), SkillAgent, "suite 'coverage'")  # no error
    with pytest.raises(ConfigError, match="lacks gradient_step$"):
        require_contract(_HalfOffline(), OfflineLearner, "offline training", ConfigError)


class _HalfOffline:
    def set_dataset(self, dataset, source=None):
        pass


def test_agent_classes_declare_a_valid_kind_and_offline_ones_the_offline_contract():
    with pytest.raises(ValueError, match="kind is 'batch'; valid kinds: online, offline, phased"):
        type("Batch", (Agent,), {"kind": "batch"})
    with pytest.raises(TypeError, match="Lazy is an offline method but lacks gradient_step"):
        type("Lazy", (Agent,), {"kind": "offline", "set_dataset": lambda self, dataset, source=None: None})
    phased = type("Phased", (Agent,), {"kind": "phased"})
    assert phased.kind == "phased" and not phased(AgentConfig(), OBS, ACT, 1, CPU).offline


def test_skill_suite_rejects_an_agent_without_skills_in_one_line():
    from runners.evaluation import SUITES, EvalContext

    ctx = EvalContext(agent=build("sac"), env=None, episodes=1, seed=0, deterministic=True, out_dir=None, step=0)
    with pytest.raises(ValueError) as info:
        SUITES["coverage"](ctx)
    assert re.search("needs a skill ?agent", str(info.value), re.IGNORECASE) and "'sac'" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_value_scored_curriculum_rejects_a_student_without_rollout_scores_in_one_line():
    teacher = PLR(PLRConfig(score="pvl"), seed=0, generator=lambda rng: np.array([int(rng.integers(9)), 0]))
    with pytest.raises(ConfigError) as info:
        CurriculumDriver(teacher, 2, student=build("sac"))
    assert "agent sac publishes no rollout statistics (use agent=ppo)" in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    CurriculumDriver(teacher, 2, student=build("ppo"))  # a ScoredStudent is accepted


# -- skill bookkeeping (agents.skills) --------------------------------------------------------------------


class CountingSkills(SkillConditionedAgent):
    """Skills 1, 2, 3, ... in the order they are drawn (rows of equal entries), actions = obs + z."""

    def __init__(self, num_envs: int) -> None:
        super().__init__(AgentConfig("counting"), OBS, ACT, num_envs, CPU)
        self.drawn = 0
        self.rng = np.random.default_rng(0)
        self.init_skills()

    @property
    def skill_dim(self) -> int:
        return 2

    def sample_skills(self, n: int, rng: np.random.Generator) -> np.ndarray:
        skills = np.repeat(np.arange(self.drawn + 1, self.drawn + n + 1, dtype=np.float32)[:, None], 2, axis=1)
        self.drawn += n
        return skills

    def act_with_skill(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return obs + z


def test_skills_are_held_per_episode_and_redrawn_only_where_episodes_end():
    agent = CountingSkills(3)
    assert isinstance(agent, SkillAgent) and not isinstance(agent, SkillRepresentation)
    np.testing.assert_array_equal(agent.z[:, 0], [1, 2, 3])
    agent.reset_episodes(np.array([False, True, False]))
    np.testing.assert_array_equal(agent.z[:, 0], [1, 4, 3])
    agent.reset_episodes(np.zeros(3, bool))  # nothing ended: nothing drawn
    assert agent.drawn == 4
    # A batch of 5 (an evaluation env) uses the skills of envs 0, 1, 2, 0, 1.
    np.testing.assert_array_equal(agent.act(np.zeros((5, 2), np.float32))[:, 0], [1, 4, 3, 1, 4])
    agent.seed(7)  # seeding draws every env's skill afresh
    np.testing.assert_array_equal(agent.z[:, 0], [5, 6, 7])


def test_skill_state_round_trips_and_other_env_counts_draw_afresh():
    agent = CountingSkills(2)
    agent.reset_episodes(np.array([True, False]))  # z = [3, 2]
    state = agent.skill_state()
    assert set(state) == {"z", "rng"}
    same = CountingSkills(2)
    same.load_skill_state(state)
    np.testing.assert_array_equal(same.z[:, 0], [3, 2])
    assert same.drawn == 2  # loaded, not drawn
    single = CountingSkills(1)
    single.load_skill_state(state)
    np.testing.assert_array_equal(single.z[:, 0], [2])  # its own next draw, not env 0's saved skill


def test_unit_direction_normalises_and_keeps_zero_differences():
    out = unit_direction(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [1.0, 1.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


# -- checkpoints of the format before agents.skills ------------------------------------------------------



def test_old_format_metra_state_dict_loads():
    cfg = METRAConfig(hidden_sizes=[8], phi_hidden_sizes=[8], batch_size=4, learning_starts=1)
    old = METRAAgent(cfg, OBS, ACT, 2, CPU)
    old.seed(3)
    # The keys and values as the pre-refactor state_dict wrote them.
    state = {"sac": old.sac.state_dict(), "phi": old.phi_net.state_dict(), "phi_optimizer": old.phi_optimizer.state_dict(),
             "log_lambda": old.log_lambda.detach().clone(), "lambda_optimizer": old.lambda_optimizer.state_dict(),
             "buffer": old.buffer.state_dict(), "z": torch.from_numpy(old.z.copy()), "rng": old.rng.bit_generator.state,
             "env_steps": 5, "updates": 2}
    assert set(old.state_dict()) == set(state)
    new = METRAAgent(cfg, OBS, ACT, 2, CPU)
    new.seed(99)
    new.load_state_dict(saved_and_loaded(state))
    np.testing.assert_array_equal(new.z, old.z)
    assert (new.env_steps, new.updates) == (5, 2)
    assert new.rng.random() == old.rng.random()
    obs = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(new.act(obs, deterministic=True), old.act(obs, deterministic=True))


def test_old_format_hilp_state_dict_loads():
    cfg = HILPConfig(hidden_sizes=[8], batch_size=4, skill_dim=3)
    old = HILPAgent(cfg, OBS, ACT, 2, CPU)
    old.seed(3)
    state = {"phi": old.phi_nets.state_dict(), "phi_targets": old.phi_targets.state_dict(),
             "phi_optimizer": old.phi_optimizer.state_dict(), "iql": old.iql.state_dict(),
             "z": torch.from_numpy(old.z.copy()), "rng": old.rng.bit_generator.state, "updates": 4,
             "dataset_path": "data/x"}
    assert set(old.state_dict()) == set(state)
    new = HILPAgent(cfg, OBS, ACT, 2, CPU)
    new.load_state_dict(saved_and_loaded(state))
    np.testing.assert_array_equal(new.z, old.z)
    assert (new.updates, new.dataset_path) == (4, "data/x")
    assert new.rng.random() == old.rng.random()


def test_old_format_gcbc_state_dict_with_goals_loads():
    cfg = GCBCConfig(hidden_sizes=[8], batch_size=4)
    old = GCBCAgent(cfg, OBS, ACT, 2, CPU)
    old.seed(3)
    bank = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    goals = bank[[1, 0]]
    state = {"policy": old.policy.state_dict(), "optimizer": old.optimizer.state_dict(), "goal_bank": torch.from_numpy(bank),
             "goals": torch.from_numpy(goals), "rng": old.rng.bit_generator.state, "updates": 1, "dataset_path": ""}
    new = GCBCAgent(cfg, OBS, ACT, 2, CPU)
    new.load_state_dict(saved_and_loaded(state))
    np.testing.assert_array_equal(new.z, goals)
    np.testing.assert_array_equal(new.goal_bank, bank)
    assert set(new.state_dict()) == set(state) - {"goals"} | {"z"}


# -- the teacher frame (curricula.base) ------------------------------------------------------------------


def test_box_and_maze_teachers_share_one_frame():
    assert Teacher is BoxTeacher and TeacherConfig is BoxTeacherConfig  # the old names still import
    for name, (_, cls) in TEACHERS.items():
        assert issubclass(cls, LevelTeacher)
        assert issubclass(cls, BoxTeacher if cls.level_kind == "box" else MazeTeacher), name
    box = make_teacher(ALPGMMConfig(), [0.0], [1.0], seed=4)
    maze = PLR(PLRConfig(score="l1vl"), seed=4, generator=lambda rng: np.array([int(rng.integers(9)), 0]))
    assert (box.score_kind, maze.score_kind) == ("return", "l1vl")
    for teacher in (box, maze):
        state = teacher.state_dict()
        assert {"name", "seed", "rng"} <= set(state) and state["seed"] == 4
        levels, learn = teacher.sample_for_training(3)
        assert len(levels) == 3 and learn.dtype == bool
        with pytest.raises(ValueError, match=r"cannot sample a negative number of levels \(-1\)"):
            teacher.sample(-1)
    assert {"low", "high"} <= set(box.state_dict()) and {"samples", "episodes"} <= set(maze.state_dict())
    assert maze.samples == 3  # the maze kind counts the levels it hands out
    with pytest.raises(ValueError, match="state of teacher 'alp_gmm' cannot be loaded into 'plr'"):
        maze.load_state_dict(box.state_dict())


def test_a_box_teacher_rebuilt_from_its_state_samples_as_the_original():
    a = make_teacher(ALPGMMConfig(), [0.0, 0.0], [1.0, 2.0], seed=1)
    a.update(a.sample(5), [0.1, 0.2, 0.3, 0.4, 0.5])
    b = make_teacher(ALPGMMConfig(), [0.0, 0.0], [1.0, 2.0], seed=2)
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    np.testing.assert_array_equal(np.array(a.sample(4)), np.array(b.sample(4)))


def test_teacher_configs_declare_scores_and_run_length_defaults():
    assert BoxTeacherConfig().score_kind() == "return" and PLRConfig(score="maxmc").score_kind() == "maxmc"
    dred = DREDConfig()
    dred.fit_to_run(5000)
    assert dred.anneal_steps == 5000
    dred.fit_to_run(10)  # an explicit schedule stays
    assert dred.anneal_steps == 5000
