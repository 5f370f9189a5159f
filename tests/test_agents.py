"""The shared learners' pieces, checked on hand-made numbers: GAE across episode ends, the squashed Gaussian
density, replay storage, state round-trips, SAC's update and action-space check, PPO's losses."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import saved_and_loaded

from agents.base import Transition
from agents.buffers import ReplayBuffer, RolloutBuffer
from agents.nets import SquashedGaussianActor, make_encoder, squashed_gaussian_log_prob
from agents.ppo import PPOAgent, PPOConfig, clipped_surrogate_loss, clipped_value_loss
from agents.sac import SAC, SACAgent, SACConfig

CPU = torch.device("cpu")
VEC_OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
BOX_ACT = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def transition(obs_space, act_space, n, rng, **overrides) -> Transition:
    fields = {
        "obs": np.stack([obs_space.sample() for _ in range(n)]),
        "action": np.stack([act_space.sample() for _ in range(n)]),
        "reward": rng.standard_normal(n).astype(np.float32),
        "next_obs": np.stack([obs_space.sample() for _ in range(n)]),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
    }
    fields.update(overrides)
    return Transition(**fields)



# -- GAE -------------------------------------------------------------------------------------------


def test_gae_across_termination_truncation_unknown_successor_and_dropped_rows():
    """Three steps, four envs, gamma 0.9, lambda 0.8, every reward 1 and V(s_t) = 1, 2, 3.
    env 0: truncated at step 1 with V(final obs) = 5; env 1: terminated at step 1; env 2: episode end at
    step 1 whose final observation is unknown (next_obs_valid False); env 3: row 2 dropped.
    Every rollout ends at step 2, where V(next obs) = 2."""
    gamma, lam = 0.9, 0.8
    space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    buffer = RolloutBuffer(3, 4, space, gym.spaces.Discrete(2))
    values = np.array([1.0, 2.0, 3.0], np.float32)
    ends = {
        1: {"truncated": np.array([True, False, True, False]), "terminated": np.array([False, True, False, False]),
            "next_obs_valid": np.array([True, True, False, True])},
        2: {"dropped": np.array([False, False, False, True])},
    }
    asked = []
    for t in range(3):
        batch = Transition(obs=np.zeros((4, 1), np.float32), action=np.zeros(4, np.int64), reward=np.ones(4, np.float32),
                           next_obs=np.zeros((4, 1), np.float32), terminated=np.zeros(4, bool),
                           truncated=np.zeros(4, bool))
        for key, value in ends.get(t, {}).items():
            setattr(batch, key, value)
        needs = buffer.needs_next_value(batch)
        asked.append(needs.copy())
        next_value = np.where(needs, 5.0 if t == 1 else 2.0, -100.0).astype(np.float32)  # -100: must be unused
        buffer.add(batch, np.zeros(4, np.int64), np.zeros(4), np.full(4, values[t]), next_value)
    # V(s') is asked for the truncation with a real final observation, and for every row at the end
    # except the dropped one.
    np.testing.assert_array_equal(asked[0], [False, False, False, False])
    np.testing.assert_array_equal(asked[1], [True, False, False, False])
    np.testing.assert_array_equal(asked[2], [True, True, True, False])

    stats = buffer.compute_advantages(gamma, lam)
    # delta_0 = 1 + 0.9 * V(s_1) - V(s_0) = 1.8 everywhere; delta_2 = 1 + 0.9 * 2 - 3 = -0.2 (envs 0-2).
    # env 0: delta_1 = 1 + 0.9 * 5 - 2 = 3.5 (bootstrap from the final obs), and the chain stops there.
    # envs 1, 2: delta_1 = 1 - 2 = -1 (no bootstrap). env 3: delta_1 = 1 + 0.9 * V(s_2) - 2 = 1.7 and
    # the chain stops before the dropped row, whose advantage is 0.
    expected = np.array([
        [1.8 + 0.72 * 3.5, 1.8 + 0.72 * -1.0, 1.8 + 0.72 * -1.0, 1.8 + 0.72 * 1.7],
        [3.5, -1.0, -1.0, 1.7],
        [-0.2, -0.2, -0.2, 0.0],
    ])
    np.testing.assert_allclose(stats.advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(stats.returns[:2], expected[:2] + values[:2, None], rtol=1e-6)
    np.testing.assert_array_equal(stats.valid[2], [True, True, True, False])
    np.testing.assert_array_equal(stats.episode_end[1], [True, True, True, False])


# -- squashed Gaussian -------------------------------------------------------------------------------


def test_squashed_gaussian_log_prob_is_the_change_of_variables_density():
    torch.manual_seed(0)
    mean = torch.tensor([[0.3, -1.2], [2.0, 0.1]], dtype=torch.float64)
    log_std = torch.tensor([[-0.5, 0.2], [0.4, -1.0]], dtype=torch.float64)
    u = mean + log_std.exp() * torch.randn_like(mean)
    # Numerically: p(a) = N(u) / |da/du| with the derivative of tanh from central differences.
    h = 1e-6
    derivative = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)
    numeric = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u) - derivative.log()).sum(-1)
    torch.testing.assert_close(squashed_gaussian_log_prob(mean, log_std, u), numeric, rtol=1e-6, atol=1e-6)

    # And the density of a = tanh(u) integrates to 1 over (-1, 1).
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
    density = squashed_gaussian_log_prob(torch.tensor([[0.3]]).double(), torch.tensor([[-0.5]]).double(),
                                         torch.atanh(a)[:, None]).exp()
    assert abs(torch.trapezoid(density, a).item() - 1.0) < 1e-4

    # Far in the tails tanh(u) rounds to 1, yet the log-density stays finite.
    assert torch.isfinite(squashed_gaussian_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), 30.0))).all()


def test_actor_sample_returns_actions_in_the_box_with_their_log_prob():
    torch.manual_seed(0)
    encoder, dim = make_encoder(VEC_OBS)
    actor = SquashedGaussianActor(encoder, dim, 0, 2, [16])
    obs = torch.randn(64, 3)
    action, log_prob = actor.sample(obs)
    assert action.abs().max() < 1
    mean, log_std = actor(obs)
    torch.testing.assert_close(squashed_gaussian_log_prob(mean, log_std, torch.atanh(action)), log_prob,
                               rtol=1e-4, atol=1e-4)
    deterministic, _ = actor.sample(obs, deterministic=True)
    torch.testing.assert_close(deterministic, torch.tanh(mean))


# -- encoders ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, kind, features", [
    ((64, 64, 3), "auto", 256),  # Procgen frames: IMPALA CNN
    ((64, 64, 9), "metra", 1536),  # three stacked dm_control frames: METRA's CNN
    ((64, 64, 3), "nature", 256),
    ((7, 7, 3), "auto", 256),  # MiniGrid's view: categorical grid
])
def test_encoders_for_image_spaces(shape, kind, features):
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    encoder, dim = make_encoder(space, kind)
    out = encoder(torch.as_tensor(np.stack([space.sample() for _ in range(2)])))
    assert dim == features and out.shape == (2, features) and out.dtype == torch.float32


def test_encoder_rejects_what_it_cannot_encode():
    with pytest.raises(ValueError, match="Box observation space"):
        make_encoder(gym.spaces.Dict({"a": VEC_OBS}))
    with pytest.raises(ValueError, match="needs uint8"):
        make_encoder(VEC_OBS, "impala")


# -- replay buffer -----------------------------------------------------------------------------------


def test_replay_buffer_keeps_uint8_wraps_masks_and_round_trips():
    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    buffer = ReplayBuffer.for_spaces(5, obs_space, BOX_ACT)
    last = None
    for step in range(4):  # 2 envs x 4 steps = 8 rows into 5 slots (one row dropped)
        last = transition(obs_space, BOX_ACT, 2, rng, next_obs_valid=np.array([True, step != 2]),
                          dropped=np.array([step == 3, False]))
        buffer.add(last)
    assert len(buffer) == 5 and buffer.pos == 7 % 5
    assert buffer.data["obs"].dtype == np.uint8
    # The newest row (env 1 of the last step; env 0 was dropped) sits just before ``pos``.
    np.testing.assert_array_equal(buffer.data["obs"][buffer.pos - 1], last.obs[1])
    # The row whose successor was unknown (step 2, env 1) is stored as terminal.
    assert buffer.data["terminated"].sum() == 1

    batch = buffer.sample(32, np.random.default_rng(1))
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape == (32, 8, 8, 3)
    assert batch["action"].dtype == torch.float32 and batch["terminated"].dtype == torch.bool

    state = saved_and_loaded(buffer.state_dict())
    assert state["data"]["obs"].shape[0] == 5
    copy = ReplayBuffer.for_spaces(5, obs_space, BOX_ACT)
    copy.load_state_dict(state)
    again = copy.sample(32, np.random.default_rng(1))
    for key in batch:
        torch.testing.assert_close(again[key], batch[key])

    # A part-filled buffer saves only its rows.
    small = ReplayBuffer.for_spaces(1000, obs_space, BOX_ACT)
    small.add(transition(obs_space, BOX_ACT, 3, rng))
    assert small.state_dict()["data"]["next_obs"].shape == (3, 8, 8, 3)


# -- SAC ---------------------------------------------------------------------------------------------


def test_sac_rejects_a_discrete_action_space():
    with pytest.raises(ValueError) as info:
        SACAgent(SACConfig(), VEC_OBS, gym.spaces.Discrete(7), 1, CPU)
    assert str(info.value) == "agent sac needs a continuous (Box) action space; got Discrete(7)"


def test_sac_update_lowers_the_critic_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    sac = SAC(SACConfig(lr=1e-3), VEC_OBS, BOX_ACT)
    n = 256
    batch = {"obs": torch.rand(n, 3) * 2 - 1, "action": torch.rand(n, 2) * torch.tensor([4.0, 1.0]) - torch.tensor([2.0, 0.0]),
             "reward": torch.randn(n), "next_obs": torch.rand(n, 3) * 2 - 1, "terminated": torch.rand(n) < 0.1}
    torch.manual_seed(1)
    before, _ = sac.critic_loss(batch)
    torch.manual_seed(1)
    sac.update_critic(batch)
    torch.manual_seed(1)  # the same next actions a' ~ pi, so the same targets
    after, _ = sac.critic_loss(batch)
    assert after.item() < before.item()


def test_sac_with_context_and_external_rewards():
    """METRA's use: networks on [obs, z], rewards computed by the caller. ``reward=`` replaces the batch's
    reward in the critic loss: with every row terminal the target is the reward itself, so the loss is
    1/2 mean (Q_1 - r)^2 + 1/2 mean (Q_2 - r)^2 of the given r."""
    torch.manual_seed(0)
    sac = SAC(SACConfig(hidden_sizes=[32]), VEC_OBS, BOX_ACT, context_dim=4)
    n = 16
    batch = {"obs": torch.randn(n, 3), "action": torch.zeros(n, 2), "reward": torch.full((n,), -5.0),
             "next_obs": torch.randn(n, 3), "terminated": torch.ones(n, dtype=torch.bool), "context": torch.randn(n, 4)}
    external = torch.linspace(0.0, 3.0, n)
    with torch.no_grad():
        normalised = (batch["action"] - torch.tensor([0.0, 0.5])) / torch.tensor([2.0, 0.5])
        q1, q2 = (critic(batch["obs"], normalised, batch["context"]) for critic in sac.critics)

    def expected(r):
        return (0.5 * ((q1 - r) ** 2).mean() + 0.5 * ((q2 - r) ** 2).mean()).item()

    assert abs(expected(external) - expected(batch["reward"])) > 1.0  # the two rewards give different losses
    metrics = sac.update(batch, reward=external)
    assert metrics["critic_loss"] == pytest.approx(expected(external), rel=1e-5)
    assert metrics["q_target"] == pytest.approx(1.5, rel=1e-6)  # mean of the external reward
    # without ``reward=`` the batch's own reward is the target
    with torch.no_grad():
        q1, q2 = (critic(batch["obs"], normalised, batch["context"]) for critic in sac.critics)
    assert sac.update(batch)["critic_loss"] == pytest.approx(expected(batch["reward"]), rel=1e-5)
    assert {"critic_loss", "actor_loss", "alpha", "entropy"} <= metrics.keys()
    action = sac.act(batch["obs"], batch["context"], deterministic=True)
    assert action.shape == (n, 2)
    assert (action >= torch.tensor([-2.0, 0.0])).all() and (action <= torch.tensor([2.0, 1.0])).all()


def test_sac_update_schedule_counts_env_steps_over_all_envs():
    cfg = SACConfig(learning_starts=6, train_freq=2, gradient_steps=3, batch_size=4, hidden_sizes=[8])
    agent = SACAgent(cfg, VEC_OBS, BOX_ACT, 4, CPU)
    rng = np.random.default_rng(0)
    updates = []
    for _ in range(3):  # 4 env steps per call: rounds at 6, 8 (second call) and 10, 12 (third)
        agent.observe(transition(VEC_OBS, BOX_ACT, 4, rng))
        updates.append(agent.updates)
    assert updates == [0, 6, 12]


def test_sac_state_dict_round_trip_acts_and_learns_identically():
    rng = np.random.default_rng(0)
    cfg = SACConfig(learning_starts=8, batch_size=8, hidden_sizes=[16])
    agent = SACAgent(cfg, VEC_OBS, BOX_ACT, 2, CPU)
    agent.seed(0)
    for _ in range(8):
        obs = np.stack([VEC_OBS.sample() for _ in range(2)])
        agent.observe(transition(VEC_OBS, BOX_ACT, 2, rng, obs=obs, action=agent.act(obs)))
    assert agent.updates > 0
    clone = SACAgent(cfg, VEC_OBS, BOX_ACT, 2, CPU)
    clone.seed(123)
    clone.load_state_dict(saved_and_loaded(agent.state_dict()))

    obs = np.stack([VEC_OBS.sample() for _ in range(5)])
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), clone.act(obs, deterministic=True))
    batch = transition(VEC_OBS, BOX_ACT, 2, rng)
    results = []
    for copy in (agent, clone):
        torch.manual_seed(7)
        results.append((copy.act(obs), copy.observe(batch)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


# -- PPO ---------------------------------------------------------------------------------------------


def test_ppo_clipped_surrogate_on_hand_numbers():
    ratio = torch.tensor([1.5, 0.5, 1.0, 1.5])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, approx_kl, clipfrac = clipped_surrogate_loss(ratio.log(), torch.zeros(4), advantages, 0.2)
    # min(rho A, clip(rho) A) per sample: min(1.5, 1.2) = 1.2; min(0.5, 0.8) = 0.5; -1; min(-1.5, -1.2) = -1.5.
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.0 - 1.5) / 4)
    assert clipfrac.item() == pytest.approx(3 / 4)
    expected_kl = np.mean([(r - 1) - np.log(r) for r in (1.5, 0.5, 1.0, 1.5)])
    assert approx_kl.item() == pytest.approx(expected_kl, rel=1e-5)


def test_ppo_clipped_value_loss_on_hand_numbers():
    values, old, returns = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.5]), torch.tensor([3.0, 0.0])
    # Unclipped errors 1 and 0; clipped values 1.2 and 0.3 have errors 1.8 and 0.3: the max of each pair.
    assert clipped_value_loss(values, old, returns, 0.2).item() == pytest.approx(0.5 * (1.8**2 + 0.3**2) / 2)
    assert clipped_value_loss(values, old, returns, None).item() == pytest.approx(0.5 * 1.0 / 2)


def test_ppo_clips_env_actions_but_stores_the_sampled_ones_and_recomputes_unpaired_steps():
    torch.manual_seed(0)
    space = gym.spaces.Box(-0.1, 0.1, (2,), np.float32)
    agent = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[8]), VEC_OBS, space, 3, CPU)
    rng = np.random.default_rng(0)
    obs = np.stack([VEC_OBS.sample() for _ in range(3)])
    action = agent.act(obs)
    assert np.all(np.abs(action) <= 0.1)
    sampled = agent._pending.action
    assert np.abs(sampled).max() > 0.1  # std 1: far outside the box
    agent.observe(transition(VEC_OBS, space, 3, rng, obs=obs, action=action))
    np.testing.assert_array_equal(agent.rollout.actions[0], sampled)
    # An observe without its act (a copy of the actions): log pi and V are evaluated for those actions.
    agent.act(obs)
    copied = np.zeros((3, 2), np.float32)
    agent.observe(transition(VEC_OBS, space, 3, rng, obs=obs, action=copied))
    with torch.no_grad():
        dist, value = agent.policy(torch.as_tensor(obs))
        np.testing.assert_allclose(agent.rollout.logprobs[1], dist.log_prob(torch.as_tensor(copied)).numpy(), rtol=1e-5)
        np.testing.assert_allclose(agent.rollout.values[1], value.numpy(), rtol=1e-5)


def test_ppo_trains_on_minigrid_like_grids_and_reports_rollout_stats():
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
    agent = PPOAgent(PPOConfig(n_steps=4, n_minibatches=2, n_epochs=2), obs_space, gym.spaces.Discrete(7), 2, CPU)
    before = state_tensors(agent.state_dict())
    rng = np.random.default_rng(0)
    obs_space.seed(0)
    metrics = {}
    for step in range(4):
        obs = np.stack([obs_space.sample() for _ in range(2)])
        metrics = agent.observe(transition(obs_space, gym.spaces.Discrete(7), 2, rng, obs=obs, action=agent.act(obs),
                                           terminated=np.array([step == 1, False])))
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"} <= metrics.keys()
    assert all(np.isfinite(metrics[k]) for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"))
    assert metrics["entropy"] == pytest.approx(np.log(7), abs=0.05)  # a fresh policy is near uniform
    assert agent.updates == 1
    stats = agent.last_rollout_stats
    assert stats.advantages.shape == (4, 2) and stats.episode_end[1, 0] and not stats.episode_end[1, 1]
    after = state_tensors(agent.state_dict())
    weights = [k for k in before if k.endswith(("weight", "bias"))]  # the network's parameters
    unchanged = [k for k in weights if torch.equal(before[k], after[k])]
    assert len(weights) >= 10 and not unchanged, unchanged


def state_tensors(state, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested state dict by dotted path (copies, so later updates do not alias them)."""
    if isinstance(state, torch.Tensor):
        return {prefix: state.detach().clone()}
    if isinstance(state, dict):
        return {k: v for key, value in state.items() for k, v in state_tensors(value, f"{prefix}.{key}").items()}
    if isinstance(state, (list, tuple)):
        return {k: v for i, value in enumerate(state) for k, v in state_tensors(value, f"{prefix}.{i}").items()}
    return {}


def ppo_on_a_fixed_batch(n_epochs: int) -> dict[str, float]:
    """One PPO update of ``n_epochs`` full-batch epochs on the same rollout: 8 steps of 4 envs, reward 1 per
    step, no episode end, gamma 0.5 (so the returns, up to 2, are far from a fresh value head's ~0)."""
    torch.manual_seed(0)
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    cfg = PPOConfig(n_steps=8, n_minibatches=1, n_epochs=n_epochs, hidden_sizes=[32], lr=1e-2, gamma=0.5,
                    clip_vloss=False, max_grad_norm=10.0)
    agent = PPOAgent(cfg, space, gym.spaces.Discrete(3), 4, CPU)
    rng = np.random.default_rng(0)
    metrics: dict[str, float] = {}
    for _ in range(8):
        obs = rng.uniform(-1, 1, (4, 4)).astype(np.float32)
        metrics = agent.observe(Transition(obs=obs, action=agent.act(obs), reward=np.ones(4, np.float32),
                                           next_obs=rng.uniform(-1, 1, (4, 4)).astype(np.float32),
                                           terminated=np.zeros(4, bool), truncated=np.zeros(4, bool)))
    assert metrics, "the eighth step completes the rollout and updates"
    return metrics


def test_ppo_value_loss_falls_over_epochs_on_a_fixed_batch():
    """``value_loss`` is the mean over the epochs' full-batch steps; the first epoch is the same in every run
    (same seed), so a falling loss makes the mean over more epochs smaller, and finite throughout."""
    runs = {epochs: ppo_on_a_fixed_batch(epochs) for epochs in (1, 16, 32)}
    for epochs, metrics in runs.items():
        assert all(np.isfinite(v) for v in metrics.values()) and metrics["epochs"] == epochs
    assert runs[1]["value_loss"] > 1.5 * runs[16]["value_loss"] > 1.5 * runs[32]["value_loss"]
    assert runs[32]["explained_variance"] == runs[1]["explained_variance"]  # of the behaviour values: same batch


def test_ppo_state_dict_round_trip_mid_rollout_acts_identically():
    torch.manual_seed(0)
    env_obs = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    cfg = PPOConfig(n_steps=4, hidden_sizes=[16])
    agent = PPOAgent(cfg, env_obs, gym.spaces.Discrete(3), 2, CPU)
    rng = np.random.default_rng(0)
    for _ in range(6):  # one update and two steps of the next rollout
        obs = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        agent.observe(transition(env_obs, gym.spaces.Discrete(3), 2, rng, obs=obs, action=agent.act(obs)))
    clone = PPOAgent(cfg, env_obs, gym.spaces.Discrete(3), 2, CPU)
    clone.load_state_dict(saved_and_loaded(agent.state_dict()))
    assert clone.rollout.step == 2 and clone.updates == 1
    obs = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), clone.act(obs, deterministic=True))
    torch.manual_seed(3)
    first = agent.act(obs)
    torch.manual_seed(3)
    np.testing.assert_array_equal(first, clone.act(obs))
