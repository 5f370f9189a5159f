"""The PPO core on rollouts whose rows are owned by several policies: GAE cut at changes of owner on
hand-computed numbers, one core's update blind to the other's rows, two policies taking turns in one
episode that each learn their own action; and the PPO agent's act/observe record (evaluation calls in
between, actions chosen elsewhere, checkpoints of the format without owners)."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import saved_and_loaded

from agents.base import Transition
from agents.buffers import RolloutBuffer
from agents.ppo import PPO, Behaviour, PPOAgent, PPOConfig, act_by_owner, record_step

CPU = torch.device("cpu")
LINE = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)


def step(n: int, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, **flags: np.ndarray) -> Transition:
    fields = {"obs": obs, "action": action, "reward": reward.astype(np.float32), "next_obs": obs.copy(),
              "terminated": np.zeros(n, bool), "truncated": np.zeros(n, bool)}
    fields.update(flags)
    return Transition(**fields)


# -- GAE at changes of owner --------------------------------------------------------------------------


def owned_rollout() -> RolloutBuffer:
    """Six steps, three envs, every reward 1, V(s_t) = t + 1 and the observation of row t is t.
    Owners per env (rows 0-5): A 0 0 1 1 0 1; B and C 0 0 1 1 0 0. B terminates at row 3, C is truncated
    there with V(final obs) = 8. At the last row V(s') = 7."""
    owners = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0]])
    buffer = RolloutBuffer(6, 3, LINE, gym.spaces.Discrete(2))
    for t in range(6):
        flags = {}
        if t == 3:
            flags = {"terminated": np.array([False, True, False]), "truncated": np.array([False, False, True])}
        batch = step(3, np.full((3, 1), t, np.float32), np.zeros(3, np.int64), np.ones(3), **flags)
        needs = buffer.needs_next_value(batch)
        next_value = np.where(needs, 8.0 if t == 3 else 7.0, -100.0).astype(np.float32)  # -100: must be unused
        buffer.add(batch, np.zeros(3, np.int64), np.zeros(3), np.full(3, t + 1.0), next_value, owner=owners[t])
    return buffer


def test_gae_follows_each_owners_rows_and_bootstraps_handovers_from_its_own_value():
    gamma, lam = 0.9, 0.8  # gamma * lambda = 0.72
    buffer = owned_rollout()
    asked = []

    def value_0(obs: np.ndarray) -> np.ndarray:  # V of policy 0: 10 + observation
        asked.append(obs[:, 0].copy())
        return 10.0 + obs[:, 0]

    stats = buffer.compute_advantages(gamma, lam, owner=0, value_fn=value_0)
    # Policy 0, env A: row 4 hands over to policy 1 and the rollout ends before policy 0 acts again, so it
    # bootstraps from its own V of the observation it handed over (row 5's: 10 + 5 = 15):
    #   delta_4 = 1 + 0.9 * 15 - 5 = 9.5. Row 1's successor is its own row 4, past policy 1's turn:
    #   delta_1 = 1 + 0.9 * V(s_4) - 2 = 3.5, A_1 = 3.5 + 0.72 * 9.5 = 10.34; A_0 = 1.8 + 0.72 * 10.34.
    # Env B: the episode terminates in policy 1's turn: row 1 does not bootstrap, A_1 = 1 - 2 = -1.
    #   Rows 4, 5 form the next episode: delta_5 = 1 + 0.9 * 7 - 6 = 1.3, A_4 = 1 + 0.9 * 6 - 5 + 0.72 * 1.3.
    # Env C: truncated in policy 1's turn: row 1 bootstraps from its V of row 2's observation (12):
    #   A_1 = 1 + 0.9 * 12 - 2 = 9.8, A_0 = 1.8 + 0.72 * 9.8.
    expected_0 = np.array([
        [1.8 + 0.72 * 10.34, 1.8 + 0.72 * -1.0, 1.8 + 0.72 * 9.8],
        [10.34, -1.0, 9.8],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
        [9.5, 1.4 + 0.72 * 1.3, 1.4 + 0.72 * 1.3],
        [0.0, 1.3, 1.3],
    ])
    np.testing.assert_allclose(stats.advantages, expected_0, rtol=1e-6, atol=1e-6)
    # V of policy 0 was asked for exactly the two handed-over observations, in row order (C's row 2, A's row 5).
    assert len(asked) == 1
    np.testing.assert_array_equal(asked[0], [2.0, 5.0])
    owned_0 = buffer.owner == 0
    np.testing.assert_array_equal(stats.owned, owned_0)
    np.testing.assert_array_equal(stats.learn, owned_0)
    np.testing.assert_allclose(stats.returns[owned_0], (expected_0 + buffer.values)[owned_0], rtol=1e-6)

    def no_value(obs: np.ndarray) -> np.ndarray:
        raise AssertionError("policy 1 never hands over before acting again or an episode end")

    stats = buffer.compute_advantages(gamma, lam, owner=1, value_fn=no_value)
    # Policy 1, env A: row 5 is the last (V(s') = 7): delta_5 = 1.3; row 3's successor is its row 5:
    #   A_3 = 1 + 0.9 * 6 - 4 + 0.72 * 1.3 = 3.336, A_2 = 1 + 0.9 * 4 - 3 + 0.72 * 3.336.
    # Env B: row 3 terminates: A_3 = 1 - 4 = -3, A_2 = 1.6 - 0.72 * 3. Env C: truncated with V = 8:
    #   A_3 = 1 + 0.9 * 8 - 4 = 4.2, A_2 = 1.6 + 0.72 * 4.2.
    expected_1 = np.zeros((6, 3))
    expected_1[2] = [1.6 + 0.72 * 3.336, 1.6 - 0.72 * 3.0, 1.6 + 0.72 * 4.2]
    expected_1[3] = [3.336, -3.0, 4.2]
    expected_1[5, 0] = 1.3
    np.testing.assert_allclose(stats.advantages, expected_1, rtol=1e-6, atol=1e-6)


def test_a_handover_without_the_owners_value_function_is_an_error():
    with pytest.raises(ValueError, match="hand over to another policy"):
        owned_rollout().compute_advantages(0.9, 0.8, owner=0)


# -- one core's update ignores the other's rows -------------------------------------------------------


def fill_random(buffer: RolloutBuffer, owners: np.ndarray, rng: np.random.Generator) -> None:
    n = buffer.num_envs
    for t in range(buffer.n_steps):
        batch = step(n, rng.standard_normal((n, 1)).astype(np.float32), rng.integers(0, 2, n), rng.standard_normal(n))
        needs = buffer.needs_next_value(batch)
        buffer.add(batch, batch.action, np.log(np.full(n, 0.5)), rng.standard_normal(n).astype(np.float32),
                   np.where(needs, rng.standard_normal(n), 0.0), owner=owners[t])


def test_an_update_of_core_0_does_not_depend_on_core_1s_rows():
    """Two envs, owners 0 0 1 1 0 0 and 1 1 0 0 1 1. Everything on policy 1's rows is changed (obs, actions,
    rewards, log pi, V, V(s'), learn) except the observation policy 0 handed over to it in env 1 (row 4),
    from which policy 0 bootstraps: core 0's update is the same."""
    torch.manual_seed(0)
    cfg = PPOConfig(n_steps=6, n_epochs=2, n_minibatches=2, hidden_sizes=[8])
    core = PPO(cfg, LINE, gym.spaces.Discrete(2), CPU, owner=0)
    twin = copy.deepcopy(core)
    owners = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1]])
    rollout = RolloutBuffer(6, 2, LINE, gym.spaces.Discrete(2))
    fill_random(rollout, owners, np.random.default_rng(1))
    altered = copy.deepcopy(rollout)
    theirs = owners == 1
    theirs_obs = theirs.copy()
    theirs_obs[4, 1] = False
    rng = np.random.default_rng(2)
    altered.obs[theirs_obs] = rng.standard_normal((theirs_obs.sum(), 1))
    altered.actions[theirs] = 1 - altered.actions[theirs]
    for name in ("rewards", "logprobs", "values", "next_values"):
        getattr(altered, name)[theirs] = rng.standard_normal(theirs.sum()) * 10
    altered.learn[theirs] = False

    before = [p.detach().clone() for p in core.policy.parameters()]
    torch.manual_seed(5)
    metrics = core.update(rollout)
    torch.manual_seed(5)
    assert twin.update(altered) == metrics
    for ours, other in zip(core.policy.parameters(), twin.policy.parameters()):
        assert torch.equal(ours, other)
    assert not all(torch.equal(a, b) for a, b in zip(before, core.policy.parameters()))  # it did learn
    np.testing.assert_array_equal(core.last_rollout_stats.learn, owners == 0)
    np.testing.assert_array_equal(core.last_rollout_stats.advantages, twin.last_rollout_stats.advantages)
    assert core.env_steps == 6  # its own rows only: the lr schedule's clock


# -- two policies taking turns within one episode -------------------------------------------------------


def test_two_policies_taking_turns_each_learn_their_own_action():
    """Two envs, episodes of 12 steps in turns of 3: policy 0 acts, then policy 1, and so on (env 1 starts
    with policy 1). Both see the same constant observation; the acting policy is paid 1 when it takes its
    own id as action. Were a policy to learn from the other's rows, it would be paid for the other action
    half of the time. Rollouts of 16 steps do not line up with turns or episodes."""
    torch.manual_seed(0)
    cfg = PPOConfig(lr=0.02, n_steps=16, n_epochs=4, n_minibatches=2, hidden_sizes=[16], ent_coef=0.0)
    space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    cores = [PPO(cfg, space, gym.spaces.Discrete(2), CPU, owner=i) for i in (0, 1)]
    rollout = RolloutBuffer(cfg.n_steps, 2, space, gym.spaces.Discrete(2))
    obs = np.ones((2, 1), np.float32)
    clock = np.array([0, 3])  # env 1 starts in policy 1's turn
    for _ in range(30 * cfg.n_steps):
        owner = (clock // 3) % 2
        behaviour = act_by_owner(cores, obs, owner)
        reward = (behaviour.env_action == owner).astype(np.float32)
        clock = clock + 1
        ended = clock % 12 == 0
        batch = step(2, obs, behaviour.env_action, reward, terminated=ended)
        record_step(rollout, cores, batch, behaviour.action, behaviour.logprob, behaviour.value, owner)
        if rollout.full:
            for core in cores:
                core.update(rollout)
            rollout.reset()
    for i, core in enumerate(cores):
        with torch.no_grad():
            probs = core.policy(torch.as_tensor(obs[:1]))[0].probs[0].numpy()
        assert probs[i] > 0.9, (i, probs)
    assert cores[0].env_steps + cores[1].env_steps == 30 * cfg.n_steps * 2


# -- the agent's act/observe record ----------------------------------------------------------------------


def narrow_box_agent_acted() -> tuple[PPOAgent, np.ndarray, np.ndarray, Behaviour]:
    """A PPO agent on three envs whose Box actions are far narrower than its initial std, after one
    ``act``: (agent, obs, the env actions it returned, the same draw made again by its core)."""
    torch.manual_seed(0)
    space = gym.spaces.Box(-0.1, 0.1, (2,), np.float32)
    agent = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[8]), LINE, space, 3, CPU)
    obs = np.array([[0.5], [-1.0], [2.0]], np.float32)
    torch.manual_seed(1)
    action = agent.act(obs)
    torch.manual_seed(1)
    return agent, obs, action, agent.core.act(obs)


def test_evaluation_calls_between_act_and_observe_leave_the_record_intact():
    """A Box action space far narrower than the initial policy's std: the rollout must keep the sampled,
    unclipped actions (what log pi is the density of), whatever is called between act and observe."""
    agent, obs, action, sampled = narrow_box_agent_acted()
    assert np.abs(sampled.action).max() > 0.1 and np.array_equal(sampled.env_action, action)
    agent.act(obs, deterministic=True)  # an evaluation episode's greedy action
    agent.act(obs[::-1].copy(), record=False)  # a stochastic evaluation call that says so
    agent.observe(step(3, obs, action, np.ones(3)))
    np.testing.assert_array_equal(agent.rollout.actions[0], sampled.action)
    np.testing.assert_array_equal(agent.rollout.logprobs[0], sampled.logprob)
    np.testing.assert_array_equal(agent.rollout.values[0], sampled.value)


def test_observe_evaluates_rows_the_record_does_not_hold():
    """Row 0's action was replaced (chosen elsewhere): it is evaluated now; rows 1, 2 keep the record. Then
    a stochastic call that records over it (a different batch): every row is evaluated now."""
    agent, obs, action, sampled = narrow_box_agent_acted()
    given = action.copy()
    given[0] = [0.05, -0.05]
    agent.observe(step(3, obs, given, np.ones(3)))
    logprob, value = agent.core.evaluate(obs[:1], given[:1])
    np.testing.assert_array_equal(agent.rollout.actions[0, 0], given[0])
    np.testing.assert_allclose(agent.rollout.logprobs[0, :1], logprob, rtol=1e-6)
    np.testing.assert_allclose(agent.rollout.values[0, :1], value, rtol=1e-6)
    np.testing.assert_array_equal(agent.rollout.actions[0, 1:], sampled.action[1:])
    np.testing.assert_array_equal(agent.rollout.logprobs[0, 1:], sampled.logprob[1:])

    action = agent.act(obs)
    agent.act(obs[:1])  # records one row of its own: the pending three rows are gone
    agent.observe(step(3, obs, action, np.ones(3)))
    logprob, value = agent.core.evaluate(obs, action)
    np.testing.assert_array_equal(agent.rollout.actions[1], action)
    np.testing.assert_allclose(agent.rollout.logprobs[1], logprob, rtol=1e-6)
    np.testing.assert_allclose(agent.rollout.values[1], value, rtol=1e-6)


def test_a_stochastic_evaluation_call_costs_a_recomputation_not_wrong_numbers():
    """Discrete actions: a recording call on other observations in between makes observe evaluate every row,
    which gives the numbers act computed."""
    torch.manual_seed(0)
    agent = PPOAgent(PPOConfig(n_steps=4, hidden_sizes=[8]), LINE, gym.spaces.Discrete(5), 3, CPU)
    obs = np.array([[0.5], [-1.0], [2.0]], np.float32)
    torch.manual_seed(1)
    action = agent.act(obs)
    torch.manual_seed(1)
    sampled = agent.core.act(obs)
    agent.act(obs + 1.0)
    agent.observe(step(3, obs, action, np.ones(3)))
    np.testing.assert_array_equal(agent.rollout.actions[0], sampled.action)
    np.testing.assert_allclose(agent.rollout.logprobs[0], sampled.logprob, rtol=1e-6)
    np.testing.assert_allclose(agent.rollout.values[0], sampled.value, rtol=1e-6)


# -- checkpoints without owners ------------------------------------------------------------------------



def test_checkpoints_of_the_format_before_owners_resume_identically():
    """The earlier layout: policy, optimizer, updates and a rollout without owners; no env_steps (the lr
    schedule then counted full rollouts: updates * n_steps * num_envs)."""
    torch.manual_seed(0)
    cfg = PPOConfig(n_steps=3, hidden_sizes=[8], anneal_lr=True, anneal_lr_steps=40)
    agent = PPOAgent(cfg, LINE, gym.spaces.Discrete(3), 2, CPU)
    rng = np.random.default_rng(0)
    for _ in range(4):  # one update, one step of the next rollout
        obs = rng.standard_normal((2, 1)).astype(np.float32)
        agent.observe(step(2, obs, agent.act(obs), rng.standard_normal(2)))
    state = agent.state_dict()
    old = {key: state[key] for key in ("policy", "optimizer", "updates", "rollout")}
    old["rollout"] = {key: value for key, value in state["rollout"].items() if key != "owner"}
    assert set(state) - set(old) == {"env_steps"} and set(state["rollout"]) - set(old["rollout"]) == {"owner"}

    clones = []
    for saved in (state, old):
        clone = PPOAgent(cfg, LINE, gym.spaces.Discrete(3), 2, CPU)
        clone.rollout.owner[:] = 7  # must be overwritten by the load
        clone.load_state_dict(saved_and_loaded(saved))
        assert clone.core.env_steps == 6 and clone.updates == 1 and clone.rollout.step == 1
        np.testing.assert_array_equal(clone.rollout.owner[:1], 0)
        clones.append(clone)
    obs = rng.standard_normal((2, 2, 1)).astype(np.float32)
    results = []
    for clone in (agent, *clones):
        torch.manual_seed(3)
        for t in range(2):
            metrics = clone.observe(step(2, obs[t], clone.act(obs[t]), np.ones(2)))
        results.append(metrics)
    assert results[0]["lr"] == pytest.approx(2.5e-4 * (1 - 6 / 40))
    assert results[0] == results[1] == results[2]
