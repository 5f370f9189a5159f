"""HILP, GCBC, the offline training loop and zero-shot prompting (agents.hilp, agents.gcbc, agents.iql,
runners.trainers.offline, runners.prompt_eval)."""

from __future__ import annotations

import dataclasses
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents.gcbc import GCBCAgent, GCBCConfig
from agents.hilp import HILPAgent, HILPConfig, hilbert_distance, plan_subgoal
from agents.iql import IQL, IQLConfig, OfflineData, expectile_loss
from agents.random_agent import RandomAgent, RandomConfig
from envs import ENVS
from envs.datasets import DatasetWriter, TransitionDataset, load_dataset
from envs.pointmaze import LAYOUTS, parse_layout
from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.cli import run_main
from runners.evaluate_run import evaluate_run, parse_eval_args
from runners.evaluation import SUITES, EvalContext
from runners.logger import read_scalars
from runners.prompt_eval import least_squares_skill, maze_corner_goals, prompt_tasks, reward_prompt
from runners.rollout import EpisodeTracker, collect_step, make_vector_env

MAZE = ENVS["pointmaze"]
OBS = gym.spaces.Box(0.0, 7.0, (2,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
TINY = {"hidden_sizes": [32, 32], "batch_size": 64}


def line_dataset(episodes: int = 8, length: int = 12, seed: int = 0) -> TransitionDataset:
    """Episodes that walk in a straight line at 0.2 per step, each in its own random direction (the action)."""
    rng = np.random.default_rng(seed)
    obs, actions, nxt, ids, t = [], [], [], [], []
    for e in range(episodes):
        angle = rng.uniform(0, 2 * np.pi)
        a = np.array([np.cos(angle), np.sin(angle)], np.float32)
        s = np.array([3.5, 3.5], np.float32) - a * 0.1 * length
        for k in range(length):
            obs.append(s)
            actions.append(a)
            s = s + 0.2 * a
            nxt.append(s)
            ids.append(e)
            t.append(k)
    n = len(obs)
    return TransitionDataset.from_arrays(
        observations=np.array(obs, np.float32), actions=np.array(actions), rewards=np.zeros(n, np.float32),
        terminations=np.zeros(n, bool), truncations=np.array([k == length - 1 for k in t]),
        next_observations=np.array(nxt, np.float32), episode_ids=np.array(ids, np.int64), timesteps=np.array(t, np.int64),
        infos={}, metadata={"env": "pointmaze"})


def saved_and_loaded(state):
    """What a checkpoint gives back: torch.save, then torch.load with weights_only=True."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def hilp(**kw) -> HILPAgent:
    torch.manual_seed(0)
    agent = HILPAgent(HILPConfig(**{**TINY, **kw}), OBS, ACT, 1, torch.device("cpu"))
    agent.seed(0)
    return agent


# -- losses and the Hilbert value ------------------------------------------------------------------


def test_expectile_loss_weights_residuals_by_sign():
    diff = torch.tensor([2.0, -2.0, 0.5])
    np.testing.assert_allclose(expectile_loss(diff, 0.9).numpy(), [0.9 * 4, 0.1 * 4, 0.9 * 0.25], rtol=1e-6)
    # HILP: the weight follows a shared advantage, not each member's residual
    adv = torch.tensor([-1.0, 1.0, 0.0])
    np.testing.assert_allclose(expectile_loss(diff, 0.9, adv).numpy(), [0.1 * 4, 0.9 * 4, 0.9 * 0.25], rtol=1e-6)
    # the minimiser is the tau-expectile: the mean at tau = 0.5, near the maximum as tau -> 1
    # (0.99 (5 - v) = 0.01 (v + v - 1)  =>  v = 4.96 / 1.01)
    x = torch.tensor([0.0, 1.0, 5.0])
    for tau, expected in ((0.5, 2.0), (0.99, 4.96 / 1.01)):
        v = torch.zeros((), requires_grad=True)
        opt = torch.optim.SGD([v], lr=0.1)
        for _ in range(2000):
            opt.zero_grad()
            expectile_loss(x - v, tau).mean().backward()
            opt.step()
        assert v.item() == pytest.approx(expected, abs=1e-3)


def test_hilbert_value_is_a_metric_on_random_phi():
    agent = hilp()
    points = torch.rand(3, 64, 2) * 7
    with torch.no_grad():
        s, g, h = (agent.phi_nets[0](p) for p in points)
    d_sg, d_gs = hilbert_distance(s, g), hilbert_distance(g, s)
    assert torch.all(-d_sg <= 0)  # V(s, g) = -d(s, g) is non-positive
    torch.testing.assert_close(d_sg, d_gs)  # symmetric
    torch.testing.assert_close(hilbert_distance(s, s), torch.full((64,), 1e-3))  # zero at s == g (up to the sqrt floor)
    assert torch.all(d_sg <= hilbert_distance(s, h) + hilbert_distance(h, g) + 1e-5)  # triangle inequality


def test_goal_prompt_on_identity_phi_points_from_s_to_g_and_reaches_goals():
    agent = hilp(skill_dim=2)
    agent.phi_nets[0] = nn.Identity()
    s, g = np.array([[1.5, 1.5], [4.0, 2.0]], np.float32), np.array([[1.5, 4.5], [1.0, 6.0]], np.float32)
    z = agent.goal_skill(s, g)
    np.testing.assert_allclose(z, (g - s) / np.linalg.norm(g - s, axis=1, keepdims=True), rtol=1e-6)
    # a policy that moves along z reaches every goal of the maze's goal set
    agent.act_with_skill = lambda obs, z, deterministic=True: z
    ctx = EvalContext(agent=agent, env=MAZE, episodes=1, seed=0, deterministic=True, out_dir=None, step=0)
    assert SUITES["goal_reaching"](ctx)["scalars"]["success_rate"] == 1.0


def test_least_squares_prompt_recovers_a_linear_reward():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 8))
    w = rng.normal(size=8)
    z = least_squares_skill(features, features @ w + 3.0)  # the intercept is absorbed by centring
    np.testing.assert_allclose(z, w / np.linalg.norm(w), atol=1e-5)

    class Stub:  # the prompt goes through the agent's phi
        def phi(self, obs):
            return obs @ np.diag(np.arange(1.0, 3.0))

    obs = rng.uniform(0, 7, size=(500, 2))
    np.testing.assert_allclose(reward_prompt(Stub(), obs, obs[:, 0] * 2.0), [1.0, 0.0], atol=1e-6)


def test_hilp_plan_halves_the_way_to_the_goal_each_recursion():
    waypoints = np.stack([np.linspace(0, 8, 81), np.zeros(81)], axis=1)  # a corridor of states in phi space
    s, g = np.array([[0.0, 0.0]]), np.array([[8.0, 0.0]])
    for recursions, expected in ((0, 8.0), (1, 4.0), (2, 2.0), (3, 1.0)):
        np.testing.assert_allclose(plan_subgoal(s, g, waypoints, recursions, knns=1), [[expected, 0.0]], atol=1e-5)
    # knns > 1 averages the nearest midpoints; the mean stays on the corridor
    np.testing.assert_allclose(plan_subgoal(s, g, waypoints, 1, knns=3), [[4.0, 0.0]], atol=1e-5)


# -- learning ---------------------------------------------------------------------------------------


def test_goal_sampling_stays_in_the_episode():
    data = OfflineData(line_dataset(episodes=3, length=5))
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(15), 50)
    for gamma in (None, 0.9):
        future = data.future_indices(index, rng, gamma)
        assert np.all(future >= np.minimum(index + 1, data.episode_end[index])) and np.all(future <= data.episode_end[index])
    goals = data.goal_indices(index, rng, p_trajgoal=0.0, p_randomgoal=0.0)
    np.testing.assert_array_equal(goals, index)  # the rest is the current state
    share = np.mean(data.goal_indices(np.zeros(4000, int), rng, 0.625, 0.375) > data.episode_end[0])
    assert 0.2 < share < 0.375  # random goals, most of which fall outside episode 0


def test_hilp_learns_temporal_distances_on_a_tiny_dataset():
    agent = hilp()
    ds = line_dataset()
    agent.set_dataset(ds)
    torch.manual_seed(1)
    batch, goals, success = agent.sample_batch()  # a fixed evaluation batch

    def loss() -> float:
        return agent.phi_loss(batch, goals, success)[0].item()

    before = loss()
    for _ in range(400):
        metrics = agent.gradient_step()
    assert loss() < before
    assert {"phi_loss", "value_loss", "critic_loss", "actor_loss", "intrinsic_reward"} <= set(metrics)
    first = ds.episode_ids == 0
    phi = agent.phi(ds.observations[first])
    d = np.linalg.norm(phi - phi[0], axis=1)
    assert d[2] < d[6] < d[11]  # farther along the trajectory is farther in phi


def expectile(x: np.ndarray, tau: float) -> float:
    """The tau-expectile of a sample by bisection on its first-order condition
    tau * sum_{x > v} (x - v) = (1 - tau) * sum_{x < v} (v - x)."""
    low, high = float(x.min()), float(x.max())
    for _ in range(100):
        v = (low + high) / 2
        if tau * np.clip(x - v, 0, None).sum() > (1 - tau) * np.clip(v - x, 0, None).sum():
            low = v
        else:
            high = v
    return (low + high) / 2


def test_iql_value_is_an_upper_expectile_of_q():
    """With fixed critics, V moves to the upper expectile of Q over the data's actions."""
    torch.manual_seed(0)
    iql = IQL(IQLConfig(hidden_sizes=[16], expectile=0.9, lr=1e-2), OBS, ACT)
    obs = torch.full((256, 2), 3.0)
    action = torch.rand(256, 2) * 2 - 1
    batch = {"obs": obs, "action": action, "reward": torch.zeros(256), "next_obs": obs, "terminated": torch.ones(256)}
    for critic in (*iql.critics, *iql.critic_targets):  # Q(s, a) = (1 + a_0)^2, a skewed spread, frozen
        critic.forward = lambda o, a, c=None: (1 + a[:, 0]) ** 2
    for _ in range(1000):
        value_loss, _, _, _ = iql.losses(batch)
        iql.value_optimizer.zero_grad()
        value_loss.backward()
        iql.value_optimizer.step()
    q = (1 + action[:, 0].numpy().astype(np.float64)) ** 2
    target = expectile(q, 0.9)
    # an upper expectile: well above the mean and apart from the nearby quantiles
    assert q.mean() + 0.5 < target < q.max()
    assert min(abs(target - np.quantile(q, p)) for p in (0.75, 0.8, 0.9)) > 0.1
    assert iql.value(obs[:1]).item() == pytest.approx(target, abs=1e-3)


def test_gcbc_imitates_on_a_tiny_dataset():
    torch.manual_seed(0)
    ds = line_dataset()
    agent = GCBCAgent(GCBCConfig(**TINY, lr=3e-3), OBS, ACT, 1, torch.device("cpu"))
    agent.seed(0)
    agent.set_dataset(ds)
    for _ in range(300):
        metrics = agent.gradient_step()
    assert metrics["mse"] < 0.1
    end = ds.episode_end_index()
    action = agent.act_with_skill(ds.observations[:4], ds.next_observations[end[:4]])
    cosine = np.sum(action * ds.actions[:4], axis=1) / np.linalg.norm(action, axis=1)
    assert np.all(cosine > 0.95)  # heads along its episode's line
    assert agent.goal_skill(ds.observations[:2], ds.next_observations[:2]).shape == (2, agent.skill_dim)
    assert agent.sample_skills(5, np.random.default_rng(0)).shape == (5, 2)


def agent_tensors_of(state, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a (nested) state dict, by dotted path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        return {k: v for key, value in state.items() for k, v in agent_tensors_of(value, f"{prefix}.{key}").items()}
    if isinstance(state, (list, tuple)):
        return {k: v for i, value in enumerate(state) for k, v in agent_tensors_of(value, f"{prefix}.{i}").items()}
    return {}


@pytest.mark.parametrize("name", ["hilp", "gcbc"])
def test_state_dicts_round_trip_learns_identically(name):
    """After a save/load round trip one seeded gradient step gives the same metrics and the same parameters
    and optimiser moments (the batch, goals and skills come from the restored generator)."""

    def make():
        if name == "hilp":
            return hilp()
        agent = GCBCAgent(GCBCConfig(**TINY), OBS, ACT, 1, torch.device("cpu"))
        agent.seed(0)
        return agent

    a, b = make(), make()
    b.seed(123)  # a different generator, overwritten by the load
    ds = line_dataset()
    a.set_dataset(ds, "somewhere")
    b.set_dataset(ds)
    for _ in range(3):
        a.gradient_step()
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    assert b.dataset_path == "somewhere"
    obs, z = np.full((3, 2), 2.0, np.float32), a.sample_skills(3, np.random.default_rng(0))
    np.testing.assert_array_equal(a.act_with_skill(obs, z), b.act_with_skill(obs, z))
    steps = []
    for agent in (a, b):
        torch.manual_seed(7)
        steps.append(agent.gradient_step())
    assert steps[0] == steps[1] and steps[0]
    after_a, after_b = agent_tensors_of(a.state_dict()), agent_tensors_of(b.state_dict())
    assert after_a.keys() == after_b.keys() and len(after_a) > 10
    for key, tensor in after_a.items():
        torch.testing.assert_close(after_b[key], tensor, rtol=0, atol=0, msg=key)
    # the step moved the parameters: the comparison above is not of two untouched copies
    before = agent_tensors_of(saved_and_loaded(b.state_dict()))
    b.gradient_step()
    assert any(not torch.equal(before[k], t) for k, t in agent_tensors_of(b.state_dict()).items())


# -- prompting suites --------------------------------------------------------------------------------


def test_maze_reward_tasks_are_the_corner_cells():
    goals = maze_corner_goals(MAZE)
    np.testing.assert_allclose(goals, [[5.9, 5.9], [5.9, 1.1], [1.1, 5.9], [1.1, 1.1]])  # near the open maze's corners
    tasks = prompt_tasks(MAZE)
    assert tasks[0].name == "goal_5.9_5.9" and tasks[0].spec.goal == [5.9, 5.9] and tasks[0].sample_spec.random_start
    ds = line_dataset()
    reward = tasks[0].relabel(ds)
    np.testing.assert_allclose(reward, -np.linalg.norm(ds.next_observations - 5.9, axis=1), rtol=1e-6)  # dense


def test_reward_prompting_moves_towards_the_rewarded_corner():
    """Identity phi and a policy that follows z: the least-squares prompt heads for the rewarded corner."""
    agent = hilp(skill_dim=2)
    agent.phi_nets[0] = nn.Identity()
    agent.act_with_skill = lambda obs, z, deterministic=True: z
    ctx = EvalContext(agent=agent, env=MAZE, episodes=1, seed=0, deterministic=True, out_dir=None, step=0)
    result = SUITES["reward_prompting"](ctx)  # no dataset: random-policy samples from random cells
    for task, info in result["tasks"].items():
        assert info["label_source"] == "random_policy"
        assert result["scalars"][f"return/{task}"] > result["scalars"][f"random_return/{task}"] + 200


class UnfoldedU(nn.Module):
    """A phi of the U maze that is the identity along each arm and stretches the connecting corridor
    (x in [3, 4], y in [2, 3]) by ``lift`` in y: the upper arm moves up by ``lift``. Distances along the
    corridor grow, so the skill of plain goal prompting from the upper arm to the lower one points straight
    down into the wall between the arms, while the phi-space midpoints HILP-Plan searches lie in the corridor."""

    def __init__(self, lift: float = 4.0) -> None:
        super().__init__()
        self.lift = lift

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x, y = obs[:, 0], obs[:, 1]
        shift = torch.where(y >= 3, torch.full_like(y, self.lift), torch.where(y >= 2, self.lift * (y - 2), torch.zeros_like(y)))
        return torch.stack([x, y + shift], dim=1)


def grid_dataset(layout: str, spacing: float = 0.1) -> TransitionDataset:
    """Single-state episodes on a grid over the free cells of a point-maze layout (the planner's waypoints)."""
    walls, _ = parse_layout(LAYOUTS[layout])
    axis_x = np.arange(1 + spacing / 2, walls.shape[0] - 1, spacing)
    axis_y = np.arange(1 + spacing / 2, walls.shape[1] - 1, spacing)
    points = np.array([(x, y) for x in axis_x for y in axis_y if not walls[int(x), int(y)]], np.float32)
    n = len(points)
    return TransitionDataset.from_arrays(
        observations=points, actions=np.zeros((n, 2), np.float32), rewards=np.zeros(n, np.float32),
        terminations=np.zeros(n, bool), truncations=np.ones(n, bool), next_observations=points,
        episode_ids=np.arange(n), timesteps=np.zeros(n, np.int64), infos={}, metadata={"env": "pointmaze"})


def planning_agent(phi: nn.Module, layout: str) -> tuple[HILPAgent, EvalContext]:
    """A HILP agent with a given phi and the policy that moves along z (the optimum of (phi(s') - phi(s))^T z
    where phi is locally the identity), its dataset a grid over the maze."""
    agent = hilp(skill_dim=2, planning_states=5000, planning_knns=10)
    agent.phi_nets[0] = phi
    agent.act_with_skill = lambda obs, z, deterministic=True: z
    spec = dataclasses.replace(MAZE, layout=layout)
    ctx = EvalContext(agent=agent, env=spec, episodes=1, seed=0, deterministic=True, out_dir=None, step=0)
    return agent, ctx


def test_goal_planning_suite_needs_the_dataset_and_solves_every_goal_with_identity_phi():
    agent, ctx = planning_agent(nn.Identity(), "open")
    assert "needs the agent's dataset" in SUITES["goal_planning"](ctx)["skipped"]
    agent.set_dataset(grid_dataset("open"))
    result = SUITES["goal_planning"](ctx)
    assert result["waypoints"] == 2500  # all 50 x 50 grid points of the open 5 x 5 cells
    assert len(result["goals"]) == 12 and result["scalars"]["success_rate"] == 1.0
    assert max(result["final_distances"]) < 0.5


def test_goal_planning_beats_plain_goal_prompting_where_the_straight_line_is_walled_off():
    agent, ctx = planning_agent(UnfoldedU(), "u")
    agent.set_dataset(grid_dataset("u"))
    planned, plain = SUITES["goal_planning"](ctx), SUITES["goal_reaching"](ctx)
    assert planned["goals"] == plain["goals"] == [[1.5, 1.5], [2.5, 1.5], [2.5, 3.5], [3.5, 1.5], [3.5, 2.5], [3.5, 3.5]]
    assert planned["scalars"]["success_rate"] == 1.0
    # plain prompting walks from the upper arm into the wall above the two lower-left goals and stays there
    np.testing.assert_allclose(plain["final_distances"][:2], [1.5, 1.5], atol=0.02)
    assert plain["scalars"]["success_rate"] == pytest.approx(4 / 6)
    # without recursions HILP-Plan is plain prompting
    agent.cfg.planning_recursions = 0
    assert SUITES["goal_planning"](ctx)["final_distances"] == plain["final_distances"]


# -- the offline runner ------------------------------------------------------------------------------


def write_maze_dataset(path, steps: int = 400) -> None:
    """A random-policy dataset of the point maze written with the suite's writer."""
    spec = dataclasses.replace(MAZE, random_start=True, max_episode_steps=50)
    envs = make_vector_env(spec, 2, "sync", 0)
    agent = RandomAgent(RandomConfig(), envs.single_observation_space, envs.single_action_space, 2, None)
    agent.seed(0)
    writer = DatasetWriter(path, spec, envs.single_observation_space, envs.single_action_space, 2, {"agent": "random"})
    obs, info = envs.reset(seed=0)
    writer.begin(obs, info)
    tracker = EpisodeTracker(2)
    for _ in range(steps // 2):
        obs, _, _ = collect_step(agent, envs, obs, True, tracker, writer)
    writer.close(steps)
    envs.close()


OFFLINE_ARGS = ["agent=hilp", "env=pointmaze", "agent.hidden_sizes=[32,32]", "agent.batch_size=32", "progress=false",
                "log_every=5", "eval.every=0", "eval.episodes=1", "eval.suites=[goal_reaching]", "checkpoint.every=10"]


def agent_tensors(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint_paths(run_dir)[-1])["agent"]
    return {f"{k}.{n}": t for k in ("phi",) for n, t in state[k].items()} | {
        f"actor.{n}": t for n, t in state["iql"]["actor"].items()}


def test_rl_run_offline_trains_checkpoints_resumes_and_rl_eval_prompts(tmp_path, capsys):
    ds = tmp_path / "ds"
    write_maze_dataset(ds)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_main([*OFFLINE_ARGS, f"dataset={ds}", "steps=30", f"run_dir={straight}"]) == 0
    assert run_main([*OFFLINE_ARGS, f"dataset={ds}", "steps=20", f"run_dir={resumed}"]) == 0
    assert [p.name for p in checkpoint_paths(resumed)] == ["step_0000000010.pt", "step_0000000020.pt"]
    assert run_main([*OFFLINE_ARGS, f"dataset={ds}", "steps=30", f"run_dir={resumed}"]) == 0
    assert checkpoint_paths(resumed)[-1].name == "step_0000000030.pt"
    # resuming continues exactly where the first invocation stopped
    for name, tensor in agent_tensors(straight).items():
        torch.testing.assert_close(tensor, agent_tensors(resumed)[name], msg=name)
    rows = read_scalars(resumed)
    losses = sorted(r["step"] for r in rows if r["tag"] == "train/phi_loss")
    assert losses == [5, 10, 15, 20, 25, 30]  # the rows logged up to the checkpoint are kept, none twice
    assert any(r["tag"] == "eval/goal_reaching/success_rate" and r["step"] == 30 for r in rows)
    # rl-eval reloads the dataset from the path in the checkpoint for reward prompting
    out = evaluate_run(parse_eval_args([f"run_dir={resumed}", "suite=reward_prompting", "episodes=1"]))
    tasks = out["results"]["reward_prompting"]["tasks"]
    assert {t["label_source"] for t in tasks.values()} == {"dataset"}


def test_offline_agents_need_a_matching_dataset(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_main([*OFFLINE_ARGS, "steps=5", f"run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert "learns offline: give dataset=DIR" in err and len(err.strip().splitlines()) == 1
    assert run_main([*OFFLINE_ARGS, "steps=5", f"run_dir={run_dir}", f"dataset={tmp_path / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not run_dir.exists()  # nothing written
    ds = tmp_path / "ds"
    write_maze_dataset(ds, steps=40)
    assert load_dataset(ds).metadata["env"] == "pointmaze"
    assert run_main(["agent=gcbc", "env=ant", f"dataset={ds}", "steps=5", f"run_dir={run_dir}", "progress=false"]) == 2
    assert "collected on env 'pointmaze', not 'ant'" in capsys.readouterr().err
