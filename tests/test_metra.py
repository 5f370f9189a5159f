"""METRA, LSD and DIAYN (agents.metra) and the skill evaluation suites (runners.skill_eval)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents import AGENTS
from agents.base import Transition
from agents.metra import DIAYNConfig, LSDConfig, METRAAgent, METRAConfig, centred_skill, constraint_penalty
from agents.sac import SACAgent, SACConfig
from envs import ENVS
from runners.evaluation import SUITES, EvalContext
from runners.skill_eval import rollout, state_coverage, x_only

OBS = gym.spaces.Box(0.0, 7.0, (2,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
TINY = {"hidden_sizes": [16, 16], "phi_hidden_sizes": [16, 16], "batch_size": 16, "learning_starts": 20,
        "train_freq": 1}


def make_agent(cfg=None, num_envs: int = 2, **overrides) -> METRAAgent:
    cfg = dataclasses.replace(cfg or METRAConfig(), **{**TINY, **overrides})
    agent = METRAAgent(cfg, OBS, ACT, num_envs, torch.device("cpu"))
    agent.seed(0)
    return agent


def feed(agent: METRAAgent, steps: int, seed: int = 0) -> dict[str, float]:
    """Random-walk transitions through ``observe``, with episode ends every 10 steps."""
    rng = np.random.default_rng(seed)
    n = agent.num_envs
    obs = rng.uniform(1, 6, (n, 2)).astype(np.float32)
    metrics: dict[str, float] = {}
    for t in range(steps):
        action = agent.act(obs)
        next_obs = np.clip(obs + 0.2 * action, 0, 7).astype(np.float32)
        done = np.full(n, (t + 1) % 10 == 0)
        metrics = agent.observe(Transition(obs, action, np.zeros(n, np.float32), next_obs, np.zeros(n, bool), done))
        agent.reset_episodes(done)
        obs = next_obs
    return metrics


class LinearPhi(nn.Module):
    """phi(s) = W s with a given W (a parameter, so the phi step has something to differentiate)."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float() @ self.weight.T


def use_phi(agent: METRAAgent, weight: np.ndarray, lr: float = 0.0) -> None:
    agent.phi_net = LinearPhi(weight)
    agent.phi_optimizer = torch.optim.SGD(agent.phi_net.parameters(), lr=lr)


def toy_batch(obs, next_obs, z) -> dict[str, torch.Tensor]:
    obs = torch.as_tensor(np.asarray(obs, np.float32))
    return {"obs": obs, "next_obs": torch.as_tensor(np.asarray(next_obs, np.float32)),
            "action": torch.zeros(len(obs), 2), "reward": torch.zeros(len(obs)),
            "terminated": torch.zeros(len(obs), dtype=torch.bool), "z": torch.as_tensor(np.asarray(z, np.float32))}


# -- the algorithm -------------------------------------------------------------------------------------


def test_registry_entries_are_configs_named_by_their_key():
    for name, cfg_cls in (("metra", METRAConfig), ("lsd", LSDConfig), ("diayn", DIAYNConfig)):
        assert AGENTS[name] == (cfg_cls, METRAAgent)
        assert cfg_cls().name == name
    assert LSDConfig().variant == "lsd" and DIAYNConfig().variant == "diayn" and DIAYNConfig().discrete_skills


@pytest.mark.parametrize("discrete", [False, True])
def test_sac_trains_on_phi_difference_reward_from_the_updated_phi(discrete):
    """The critics regress on r = (phi'(s') - phi'(s))^T z~ of the phi just stepped (phi'), with the raw z as
    the networks' context. Every row is terminal, so the critic target is that reward itself and SAC's
    reported critic loss is 1/2 mean (Q_1 - r)^2 + 1/2 mean (Q_2 - r)^2 with the critics of before the step."""
    w = np.array([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]]).T  # phi: R^2 -> R^3
    agent = make_agent(skill_dim=3, discrete_skills=discrete)
    use_phi(agent, w, lr=0.05)  # phi changes in the step: the reward must use the new phi
    rng = np.random.default_rng(1)
    s, s_next = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    z = agent.sample_skills(5, rng)
    batch = toy_batch(s, s_next, z)
    batch["terminated"] = torch.ones(5, dtype=torch.bool)
    batch["action"] = torch.as_tensor(rng.uniform(-1, 1, (5, 2)), dtype=torch.float32)  # ACT is [-1, 1]^2
    with torch.no_grad():
        q1, q2 = (critic(batch["obs"], batch["action"], batch["z"]) for critic in agent.sac.critics)
    metrics = agent.update(batch)
    new_w = agent.phi_net.weight.detach().numpy()
    assert not np.allclose(new_w, w)
    direction = (z - z.mean(1, keepdims=True)) * 3 / 2 if discrete else z
    reward = torch.as_tensor(np.sum((s_next @ new_w.T - s @ new_w.T) * direction, axis=1), dtype=torch.float32)
    old_reward = torch.as_tensor(np.sum((s_next @ w.T - s @ w.T) * direction, axis=1), dtype=torch.float32)

    def critic_loss(r):
        return (0.5 * ((q1 - r) ** 2).mean() + 0.5 * ((q2 - r) ** 2).mean()).item()

    assert abs(critic_loss(reward) - critic_loss(old_reward)) > 1e-3  # the two phis are told apart
    assert metrics["critic_loss"] == pytest.approx(critic_loss(reward), rel=1e-5)
    assert metrics["q_target"] == pytest.approx(reward.mean().item(), rel=1e-5, abs=1e-6)
    assert metrics["intrinsic_reward"] == pytest.approx(reward.mean().item(), rel=1e-5, abs=1e-6)


def test_centred_one_hot_skills_as_in_the_reference():
    z = torch.eye(4)
    centred = centred_skill(z)
    np.testing.assert_allclose(centred.numpy(), np.where(np.eye(4) == 1, 1.0, -1.0 / 3), rtol=1e-6)
    np.testing.assert_allclose(centred.sum(1).numpy(), 0.0, atol=1e-6)


def test_skill_prior():
    metra = make_agent(skill_dim=3)
    z = metra.sample_skills(100, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    discrete = make_agent(skill_dim=16, discrete_skills=True)
    z = discrete.sample_skills(48, np.random.default_rng(0))
    assert set(np.unique(z)) == {0.0, 1.0} and np.all(z.sum(1) == 1)
    assert np.all(z.sum(0) == 3)  # 48 draws of 16 skills: each 3 times, as the reference evaluates
    single = {int(discrete.sample_skills(1, np.random.default_rng(k)).argmax()) for k in range(200)}
    assert single == set(range(16))


def test_each_episode_keeps_its_skill_until_it_ends():
    agent = make_agent(num_envs=3)
    before = agent.z.copy()
    agent.reset_episodes(np.array([False, True, False]))
    np.testing.assert_array_equal(agent.z[[0, 2]], before[[0, 2]])
    assert not np.allclose(agent.z[1], before[1])
    feed(agent, 5)
    stored = agent.buffer.data["z"][: agent.buffer.size]
    np.testing.assert_array_equal(stored[-3:], agent.z)  # the skill in force is stored with each step


def test_constraint_uses_the_mean_over_dimensions_with_slack():
    phi_s = torch.zeros(2, 4)
    phi_next = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]])
    penalty = constraint_penalty(phi_s, phi_next, slack=1e-3)
    # 1 - mean_i dphi_i^2: -0 for ||dphi||^2 = 4 = D (on the boundary), clipped to epsilon when satisfied.
    np.testing.assert_allclose(penalty.numpy(), [0.0, 1e-3], atol=1e-7)


@pytest.mark.parametrize("scale, rises", [(3.0, True), (0.1, False)])
def test_dual_variable_rises_when_violated_and_falls_when_satisfied(scale, rises):
    agent = make_agent()
    use_phi(agent, scale * np.eye(2))
    s = np.random.default_rng(0).normal(size=(64, 2))
    batch = toy_batch(s, s + 1.0, agent.sample_skills(64, np.random.default_rng(1)))
    before = agent.lam.item()
    assert before == pytest.approx(30.0)
    for _ in range(5):
        metrics = agent.update_phi_and_lambda(batch)
    assert (metrics["lambda"] > before) == rises
    assert (metrics["constraint_penalty"] < 0) == rises


def test_phi_gradient_follows_the_skill_and_the_constraint():
    """dphi = W e_x along z = e_x: a free step stretches phi along z; a violating phi shrinks."""
    s = np.zeros((8, 2))
    z = np.tile([1.0, 0.0], (8, 1))
    for scale, grows in ((0.5, True), (3.0, False)):
        agent = make_agent()
        use_phi(agent, scale * np.eye(2), lr=1e-3)
        agent.update_phi_and_lambda(toy_batch(s, s + [1.0, 0.0], z))
        assert (agent.phi_net.weight[0, 0].item() > scale) == grows


def test_lsd_is_spectrally_normalised_and_has_no_dual():
    agent = make_agent(LSDConfig())
    metrics = feed(agent, 60)
    assert "lambda" not in metrics and "phi_loss" in metrics
    weights = [m.weight for m in agent.phi_net.modules() if isinstance(m, nn.Linear)]
    assert len(weights) == 3
    for w in weights:
        assert torch.linalg.matrix_norm(w.detach(), ord=2).item() <= 1.05


@pytest.mark.parametrize("discrete", [True, False])
def test_diayn_reward_is_the_discriminator_log_likelihood_ratio(discrete):
    agent = make_agent(DIAYNConfig(), skill_dim=4, discrete_skills=discrete)
    phi_next = torch.randn(6, 4)
    z = torch.as_tensor(agent.sample_skills(6, np.random.default_rng(0)))
    reward = agent.intrinsic_reward(torch.zeros(6, 4), phi_next, z)
    if discrete:
        expected = torch.log_softmax(phi_next, -1)[torch.arange(6), z.argmax(1)] + np.log(4)
    else:
        normal = torch.distributions.Normal
        expected = (normal(phi_next, 1.0).log_prob(z) - normal(0.0, 1.0).log_prob(z)).sum(1)
    np.testing.assert_allclose(reward.detach().numpy(), expected.numpy(), rtol=1e-5)
    assert "lambda" not in feed(agent, 40)


def test_state_dict_round_trip_gives_identical_actions_and_updates():
    agent = make_agent()
    feed(agent, 40)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    copy = make_agent()
    copy.seed(123)
    copy.load_state_dict(torch.load(buffer, weights_only=False))
    obs = np.random.default_rng(5).uniform(0, 7, (2, 2)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), copy.act(obs, deterministic=True))
    np.testing.assert_array_equal(agent.phi(obs), copy.phi(obs))
    torch.manual_seed(0)
    first = agent.update(agent.buffer.sample(16, agent.rng))
    torch.manual_seed(0)
    second = copy.update(copy.buffer.sample(16, copy.rng))
    assert first == second


def test_sac_step_schedule_and_skills_survive_a_different_env_count():
    agent = make_agent(num_envs=2)
    feed(agent, 30)  # 60 env steps, learning from step 20: 41 updates (steps 20..60)
    assert agent.updates == 41
    state = agent.state_dict()
    # the same env count: the running skills and the generator come back exactly
    same = make_agent(num_envs=2)
    same.seed(99)
    same.load_state_dict(state)
    np.testing.assert_array_equal(same.z, agent.z)
    assert same.rng.bit_generator.state == agent.rng.bit_generator.state
    # another env count (rl-eval rebuilds agents with one env): fresh skills drawn from the restored
    # generator, the same whatever the rebuilt agent was seeded with
    restored = np.random.default_rng()
    restored.bit_generator.state = state["rng"]
    expected = agent.sample_skills(1, restored)
    for seed in (1, 2):
        single = make_agent(num_envs=1)
        single.seed(seed)
        single.load_state_dict(state)
        assert single.z.shape == (1, 2)
        np.testing.assert_array_equal(single.z, expected)
        assert single.rng.bit_generator.state == restored.bit_generator.state  # the draw advanced it


# -- end to end ------------------------------------------------------------------------------------------


RUN_ARGS = ["env=pointmaze", "agent.hidden_sizes=[16,16]", "agent.phi_hidden_sizes=[16,16]",
            "agent.batch_size=16", "agent.learning_starts=100", "eval.episodes=1", "eval.every=0", "log_every=100",
            "progress=false", "device=cpu", "steps=300"]


@pytest.mark.parametrize("name", ["metra", "lsd", "diayn"])
def test_rl_run_and_rl_eval_end_to_end(name, tmp_path, capsys):
    from runners.cli import eval_main, run_main

    run_dir = tmp_path / name
    assert run_main([f"agent={name}", f"run_dir={run_dir}", *RUN_ARGS]) == 0, capsys.readouterr().err
    scalars = (run_dir / "scalars.csv").read_text()
    for key in ("eval/coverage/state_coverage", "eval/goal_reaching/success_rate", "train/phi_loss"):
        assert key in scalars
    if name == "metra":
        assert "train/lambda" in scalars
        assert eval_main([f"run_dir={run_dir}"]) == 0, capsys.readouterr().err
        assert list((run_dir / "eval").glob("coverage_pointmaze-open_step300.png"))
        (result,) = (run_dir / "eval").glob("*.json")
        assert "state_coverage" in json.loads(result.read_text())["results"]["coverage"]["scalars"]


# -- evaluation suites -----------------------------------------------------------------------------------


def test_state_coverage_counts_floor_bins():
    a = np.array([[0.5, 0.5], [0.9, 0.1], [1.2, 0.5], [-0.5, 3.0]])
    b = np.array([[1.99, 0.0], [5.0, 5.0]])
    assert state_coverage([a, b]) == 4  # (0,0), (1,0), (-1,3), (5,5)
    assert state_coverage([a, b], only_x=True) == 4  # x bins 0, 1, -1, 5
    assert state_coverage([a[:2]]) == 1
    assert x_only(ENVS["halfcheetah"]) and x_only(ENVS["cheetah"]) and not x_only(ENVS["ant"])


class StubSkillAgent:
    """A skill agent with phi = identity whose action is its skill: the point moves along z."""

    cfg = SACConfig(name="stub")
    skill_dim = 2

    def __init__(self, direction=None):
        self.direction = direction

    def sample_skills(self, n, rng):
        return np.tile(self.direction, (n, 1)).astype(np.float32)

    def act_with_skill(self, obs, z, deterministic=True):
        return np.asarray(z, np.float32)

    def phi(self, obs):
        return np.asarray(obs, np.float64)


def context(agent, spec, out_dir=None) -> EvalContext:
    return EvalContext(agent=agent, env=spec, episodes=1, seed=0, deterministic=True, out_dir=out_dir, step=7)


def test_coverage_suite_counts_the_cells_of_its_trajectories(tmp_path):
    spec = ENVS["pointmaze"]  # open 7 x 7 maze, start near (3.5, 3.5)
    still = SUITES["coverage"](context(StubSkillAgent([0.0, 0.0]), spec))
    assert still["scalars"]["state_coverage"] == 1.0 and still["trajectories"] == 48
    right = SUITES["coverage"](context(StubSkillAgent([1.0, 0.0]), spec, tmp_path))
    assert right["scalars"]["state_coverage"] == 3.0  # cells x = 3, 4, 5 (the wall starts at x = 6)
    assert Path(right["plot"]).is_file()


def test_goal_prompt_on_identity_phi_reaches_every_goal():
    spec = ENVS["pointmaze"]
    result = SUITES["goal_reaching"](context(StubSkillAgent(), spec))
    assert result["scalars"]["success_rate"] == 1.0
    assert result["scalars"]["final_distance_mean"] < 0.2
    assert len(result["goals"]) == 12


def test_metra_goal_skill_is_the_normalised_phi_difference():
    agent = make_agent()
    use_phi(agent, np.eye(2))
    z = agent.goal_skill(np.array([[1.0, 1.0]], np.float32), np.array([[4.0, 5.0]], np.float32))
    np.testing.assert_allclose(z, [[0.6, 0.8]], rtol=1e-6)
    _, positions = rollout(ENVS["pointmaze"], lambda obs, rows: agent.goal_skill(obs, np.full_like(obs, 5.5)),
                           1, seed=0)
    start, end = positions[0][0], positions[0][-1]
    assert np.linalg.norm(end - 5.5) < 0.3 < np.linalg.norm(start - 5.5)


def test_skill_suites_reject_plain_agents_and_skip_unsupported_envs():
    sac = SACAgent(SACConfig(), OBS, ACT, 1, torch.device("cpu"))
    for suite in ("coverage", "goal_reaching"):
        with pytest.raises(ValueError, match="needs a skill agent"):
            SUITES[suite](context(sac, ENVS["pointmaze"]))
    skipped = SUITES["goal_reaching"](context(StubSkillAgent(), ENVS["ant"]))  # ant without xy_in_obs
    assert skipped["scalars"] == {} and "xy_in_obs" in skipped["skipped"]


# -- learning (slow) -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_metra_covers_more_of_four_rooms_than_a_random_policy(tmp_path):
    """A CPU-sized METRA run (30k steps, about 2 minutes) against 48 uniformly random trajectories."""
    from runners.cli import run_main
    from runners.skill_eval import COVERAGE_TRAJECTORIES

    run_dir = tmp_path / "metra"
    args = ["agent=metra", "env=pointmaze", "env.layout=four_rooms", "steps=30000", "eval.every=0",
            "progress=false", "device=cpu", f"run_dir={run_dir}"]
    assert run_main(args) == 0
    rows = [line.split(",") for line in (run_dir / "scalars.csv").read_text().splitlines()]
    metra = max(float(r[2]) for r in rows if r[1] == "eval/coverage/state_coverage")
    spec = dataclasses.replace(ENVS["pointmaze"], layout="four_rooms")
    rng = np.random.default_rng(0)
    _, positions = rollout(spec, lambda obs, rows: rng.uniform(-1, 1, (len(obs), 2)), COVERAGE_TRAJECTORIES, 0)
    random = state_coverage(positions)
    assert metra > 1.5 * random, (metra, random)


class ConstantActionSkills:
    """A stand-in skill agent: discrete skill k plays the constant action ``ACTIONS[k]``."""

    ACTIONS = (0.0, 1.0, -1.0)

    def __init__(self, action_dim: int) -> None:
        self.cfg = dataclasses.replace(METRAConfig(), skill_dim=3, discrete_skills=True)
        self.skill_dim = 3
        self.action_dim = action_dim

    def sample_skills(self, n, rng):
        return np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]

    def act_with_skill(self, obs, z, deterministic=True):
        value = np.array(self.ACTIONS, dtype=np.float32)[np.asarray(z).argmax(axis=1)]
        return np.repeat(value[:, None], self.action_dim, axis=1)


def test_downstream_search_picks_the_best_skill_and_reports_random_beside_it():
    """On HalfCheetah's forward reward standing still (action 0) beats full-torque skills, whose control cost
    (0.1 |a|^2 per step over 6 joints) dominates in 30 steps, and beats uniform random actions."""
    spec = dataclasses.replace(ENVS["halfcheetah"], max_episode_steps=30)
    agent = ConstantActionSkills(action_dim=6)
    ctx = EvalContext(agent=agent, env=spec, episodes=2, seed=0, deterministic=True, out_dir=None, step=0)
    result = SUITES["downstream"](ctx)
    assert result["best_skills"]["forward"] == [1.0, 0.0, 0.0]
    assert result["search_candidates"] == 3
    scalars = result["scalars"]
    assert scalars["return/forward"] > scalars["random_return/forward"]
    assert SUITES["downstream"](dataclasses.replace(ctx, env=ENVS["pointmaze"]))["skipped"]


def test_training_coverage_counts_bins_of_finished_episodes_total_and_queue():
    from runners.skill_eval import TrainingCoverage

    cov = TrainingCoverage(num_envs=2, only_x=False, queue_episodes=1)
    cov.step({"xy": np.array([[0.5, 0.5], [3.2, 0.1]])}, np.array([False, False]))
    assert cov.scalars() == {}  # nothing finished yet
    # env 0 ends: its final x-y is in final_info; info["xy"] is already the next episode's start
    cov.step({"xy": np.array([[0.0, 0.0], [3.9, 0.9]]), "final_info": {"xy": np.array([[1.5, 0.5], [0, 0]]),
                                                                        "_xy": np.array([True, False])}},
             np.array([True, False]))
    assert cov.scalars() == {"coverage_total": 2.0, "coverage_queue": 2.0}  # bins (0,0) and (1,0)
    cov.step({"xy": np.array([[7.5, 7.5], [3.0, 0.0]])}, np.array([False, True]))
    assert cov.scalars() == {"coverage_total": 3.0, "coverage_queue": 1.0}  # env 1's bin (3,0); queue holds 1 episode
    restored = TrainingCoverage(num_envs=2, only_x=False, queue_episodes=1)
    restored.load_state_dict(cov.state_dict())
    assert restored.scalars() == cov.scalars()
