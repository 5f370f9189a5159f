"""Learning checks for the shared learners (slow: run with ``pytest -m slow``).

Agents are driven exactly as the runner drives them: a Gymnasium SyncVectorEnv in SAME_STEP autoreset
mode, ``act`` -> ``step`` -> ``observe(Transition)`` with the real final observation of finished
episodes, then judged by deterministic evaluation episodes on a fresh env.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from agents.base import Agent, Transition
from agents.ppo import PPOAgent, PPOConfig
from agents.sac import SACAgent, SACConfig

pytestmark = pytest.mark.slow


def train(agent: Agent, env_id: str, num_envs: int, steps: int, seed: int,
          every: int = 0, callback: Callable[[int], None] | None = None) -> None:
    """Collect ``steps`` env steps (summed over envs), handing every vector step to the agent; call
    ``callback(steps so far)`` every ``every`` steps."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    for step in range(num_envs, steps + 1, num_envs):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        successor = next_obs.copy()
        for i in np.flatnonzero(info.get("_final_obs", [])):
            successor[i] = info["final_obs"][i]
        agent.observe(Transition(obs, action, reward.astype(np.float32), successor, terminated, truncated))
        obs = next_obs
        if callback is not None and step % every < num_envs:
            callback(step)
    envs.close()


def evaluate(agent: Agent, env_id: str, episodes: int, seed: int) -> float:
    """Mean return of deterministic episodes."""
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs[None], deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def test_sac_learns_pendulum():
    seed_all(0)
    env = gym.make("Pendulum-v1")
    agent = SACAgent(SACConfig(learning_starts=1_000), env.observation_space, env.action_space, 1, torch.device("cpu"))
    agent.seed(0)
    start = time.perf_counter()
    train(agent, "Pendulum-v1", num_envs=1, steps=10_000, seed=0)
    score = evaluate(agent, "Pendulum-v1", episodes=10, seed=100)
    print(f"SAC Pendulum-v1: 10000 steps, mean return {score:.1f} over 10 episodes, {time.perf_counter() - start:.0f} s")
    assert score > -400


def test_ppo_learns_cartpole():
    """Default hyperparameters. PPO on CartPole oscillates once it has learnt: a deterministic evaluation
    after exactly 50k steps was below 400 for 8 of 20 seeds (stable-baselines3's PPO with the same
    hyperparameters: 6 of 20), while all 20 passed 400 at one of the evaluations every 10k steps. So the
    check is that an evaluation during the 50k steps passes 400 and that the last one is still far above
    a random policy's ~22."""
    seed_all(0)
    env = gym.make("CartPole-v1")
    agent = PPOAgent(PPOConfig(), env.observation_space, env.action_space, 8, torch.device("cpu"))
    scores: dict[int, float] = {}
    start = time.perf_counter()
    train(agent, "CartPole-v1", num_envs=8, steps=50_000, seed=0, every=10_000,
          callback=lambda step: scores.update({step: evaluate(agent, "CartPole-v1", episodes=10, seed=100)}))
    print(f"PPO CartPole-v1: mean return of 10 episodes at steps {scores}, {time.perf_counter() - start:.0f} s")
    assert max(scores.values()) > 400
    assert scores[max(scores)] > 150
