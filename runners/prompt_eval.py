"""Zero-shot prompting of offline skill agents (HILP, and GCBC through its own hooks): the ``reward_prompting``
and ``goal_planning`` suites. Plain goal prompting is ``runners.skill_eval``'s ``goal_reaching`` suite
(z = (phi(g) - phi(s)) / ||.||, or the agent's ``goal_skill``).

``goal_planning`` (HILP-Plan): ``goal_reaching``'s goals and protocol, with the skill aimed at a subgoal the
agent's ``planned_goal_skill(obs, goal_obs, waypoint_phis)`` picks among the phi of ``planning_states``
dataset observations (drawn once per evaluation, seeded), recomputed every step. Skipped without a dataset.

``reward_prompting`` (the HILP paper's zero-shot RL protocol, with the policy of the Hilbert foundation
policy): for each reward task of the env

1. label ~10,000 transitions with the task's reward r(s, a, s');
2. infer the skill z = w / ||w||, w the least-squares solution of r ~ (phi(s') - mean phi(s'))^T w (centring
   phi is fitting an intercept, which a directional reward cannot use anyway), or ask the agent's own
   ``reward_skill(next_obs, rewards)`` when it has one (GCBC: the best-rewarded state as its goal);
3. report the mean episode return of pi(a | s, z) with that fixed z (``return/<task>``) beside a uniform
   random policy's over the same seeds (``random_return/<task>``).

Why a state reward fits the directional reward: with r(s') = phi(s')^T w, the policy's intrinsic reward
(phi(s') - phi(s))^T w is a potential-based shaping of it, so maximising one maximises the other.

Labelled transitions, in this order:

* the agent's dataset (the run's ``dataset=``: in memory during training; reloaded from the path kept in the
  checkpoint by ``rl-eval``) where the task's spec can compute its reward for it (``EnvSpec.relabel_rewards``):
  point-maze goal rewards are
  relabelled exactly from the next position (``infos["next_xy"]``, else the observation), and a dataset
  collected on exactly the task's env config keeps its own rewards;
* else transitions of a uniform random policy on the task's env (its own reward; ``EnvSpec.labelling_spec``,
  which for the point maze starts from random free cells, so the samples cover the maze). dm_control observations do not hold the physics state, so
  other tasks' rewards cannot be recomputed from a dataset: random-policy samples it is.

Reward tasks (``EnvSpec.prompt_tasks``): dm_control quadruped walk/run/stand/jump, walker stand/walk/run, cheetah
run, and the forward reward of Gymnasium Ant/HalfCheetah (their ``reward_tasks``); point maze: reaching each of the
(up to) 4 corners of the maze (the free cells extreme in x + y, x - y, -x + y, -x - y; the goal 0.4 from
the cell's centre towards the corner), named ``goal_<x>_<y>``, with the maze's dense goal reward (minus the
distance to the goal per step, so that every labelled sample carries signal, not only the few near the
goal). Corners, because a reward linear in phi is maximised at an extreme of the state space: a goal in the
middle of the maze is not a task a linear prompt can express. The result records where
each task's labels came from (``label_source``) and the inferred skill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.base import PlanPrompted, RewardPrompted, SkillRepresentation
from envs import EnvSpec
from envs.datasets import DatasetError, load_dataset
from envs.pointmaze import PointMazeSpec
from runners.skill_eval import (
    Policy,
    check_skill_agent,
    goal_task,
    random_policy,
    reach_goals,
    rollout,
    skill_policy,
)
from runners.suite_registry import EvalContext, register_suite

REWARD_SAMPLES = 10_000


@dataclass
class RewardTask:
    name: str
    spec: EnvSpec  # the env that pays the task's reward
    sample_spec: EnvSpec  # where random-policy labels are collected
    relabel: Callable[[Any], np.ndarray | None]  # dataset -> reward per transition, None where it cannot


def maze_corner_goals(spec: PointMazeSpec) -> np.ndarray:
    """The point maze's corner goals (``PointMazeSpec.corner_goals``)."""
    return spec.corner_goals()


def prompt_tasks(spec: EnvSpec) -> list[RewardTask]:
    """The env's prompting tasks (``EnvSpec.prompt_tasks``, see the module docstring); ValueError for an env
    without any."""
    tasks = spec.prompt_tasks()
    if not tasks:
        raise ValueError(f"env {spec.describe()} has no reward tasks to prompt (dm_control quadruped, walker, "
                         f"cheetah, ant, halfcheetah, pointmaze)")
    return [RewardTask(name, task_spec, task_spec.labelling_spec(), task_spec.relabel_rewards)
            for name, task_spec in tasks.items()]


def agent_dataset(agent: Any, spec: EnvSpec) -> tuple[Any, str | None]:
    """(the agent's dataset or None, why not): in memory, else reloaded from ``agent.dataset_path``."""
    dataset = getattr(agent, "dataset", None)
    if dataset is not None:
        return dataset, None
    path = getattr(agent, "dataset_path", None)
    if not path:
        return None, "the agent has no dataset"
    try:
        dataset = load_dataset(path, spec)
    except DatasetError as exc:
        return None, str(exc)
    agent.dataset = dataset  # later tasks and suites reuse it
    return dataset, None


def random_policy_samples(spec: EnvSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(next observations, rewards) of n steps of a uniform random policy on ``spec``."""
    env = spec.make()
    env.action_space.seed(seed)
    next_obs, rewards = [], []
    try:
        env.reset(seed=seed)
        episode = 0
        while len(rewards) < n:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            next_obs.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                episode += 1
                env.reset(seed=seed + episode)
    finally:
        env.close()
    return np.stack(next_obs), np.asarray(rewards, np.float32)


@register_suite("goal_planning")
def goal_planning_suite(ctx: EvalContext) -> dict[str, Any]:
    """Zero-shot goal reaching through HILP-Plan's subgoals (see the module docstring)."""
    check_skill_agent(ctx.agent, "goal_planning", (SkillRepresentation, PlanPrompted))
    try:
        goal_task(ctx.env)
    except ValueError as exc:
        return {"scalars": {}, "skipped": str(exc)}
    dataset, no_dataset = agent_dataset(ctx.agent, ctx.env)
    if dataset is None:
        return {"scalars": {}, "skipped": f"planning needs the agent's dataset: {no_dataset}"}
    n = min(int(ctx.agent.cfg.planning_states), len(dataset.observations))
    rows = np.random.default_rng(ctx.seed).choice(len(dataset.observations), n, replace=False)
    states = np.asarray(dataset.observations)[np.sort(rows)]
    waypoints = torch.as_tensor(np.concatenate([ctx.agent.phi(chunk) for chunk in np.array_split(states, max(1, n // 4096))]))

    def policy_for_goals(goals: np.ndarray, goal_observation: Callable) -> Policy:
        def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
            z = ctx.agent.planned_goal_skill(obs, goal_observation(obs, goals[rows]), waypoints)
            return ctx.agent.act_with_skill(obs, z, ctx.deterministic)

        return policy

    result = reach_goals(ctx.env, policy_for_goals, ctx.seed)
    result["waypoints"] = n
    return result


def labelled_samples(task: RewardTask, dataset: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(next observations, rewards, source) of up to ``n`` labelled transitions (see the module docstring)."""
    rewards = task.relabel(dataset) if dataset is not None else None
    if rewards is not None:
        rows = np.random.default_rng(seed).choice(len(rewards), min(n, len(rewards)), replace=False)
        return np.asarray(dataset.next_observations)[rows], rewards[rows], "dataset"
    next_obs, rewards = random_policy_samples(task.sample_spec, n, seed)
    return next_obs, rewards, "random_policy"


def least_squares_skill(features: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """z = w / ||w|| with w = argmin ||(F - mean F) w - (r - mean r)||^2 (a zero w stays zero)."""
    features = np.asarray(features, np.float64)
    centred = features - features.mean(axis=0)
    w, *_ = np.linalg.lstsq(centred, np.asarray(rewards, np.float64) - np.mean(rewards), rcond=None)
    norm = np.linalg.norm(w)
    return (w / norm if norm > 1e-12 else w).astype(np.float32)


def reward_prompt(agent: Any, next_obs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """The agent's ``reward_skill`` if it has one, else the least-squares skill on ``phi(s')``."""
    if isinstance(agent, RewardPrompted):
        return np.asarray(agent.reward_skill(next_obs, rewards), np.float32)
    phis = np.concatenate([agent.phi(chunk) for chunk in np.array_split(next_obs, max(1, len(next_obs) // 4096))])
    return least_squares_skill(phis, rewards)


@register_suite("reward_prompting")
def reward_prompting_suite(ctx: EvalContext) -> dict[str, Any]:
    """Zero-shot returns with the skill inferred from labelled rewards, beside a random policy (module docstring)."""
    check_skill_agent(ctx.agent, "reward_prompting", (SkillRepresentation,))
    try:
        tasks = prompt_tasks(ctx.env)
    except ValueError as exc:
        return {"scalars": {}, "skipped": str(exc)}
    dataset, no_dataset = agent_dataset(ctx.agent, ctx.env)
    episodes = max(ctx.episodes, 1)
    scalars: dict[str, float] = {}
    details: dict[str, Any] = {}
    for k, task in enumerate(tasks):
        next_obs, rewards, source = labelled_samples(task, dataset, REWARD_SAMPLES, ctx.seed + k)
        z = reward_prompt(ctx.agent, next_obs, rewards)
        skill_returns: list[float] = []
        rollout(task.spec, skill_policy(ctx.agent, np.repeat(z[None], episodes, axis=0), ctx.deterministic), episodes,
                ctx.seed + 10_000, returns=skill_returns)
        random_returns: list[float] = []
        rollout(task.spec, random_policy(task.spec, ctx.seed), episodes, ctx.seed + 10_000, returns=random_returns)
        scalars[f"return/{task.name}"] = float(np.mean(skill_returns))
        scalars[f"random_return/{task.name}"] = float(np.mean(random_returns))
        details[task.name] = {"label_source": source, "labelled": len(rewards), "mean_label": float(np.mean(rewards)),
                              "skill": z.tolist(), "returns": skill_returns, "random_returns": random_returns}
    result: dict[str, Any] = {"scalars": scalars, "tasks": details, "episodes": episodes}
    if no_dataset is not None:
        result["dataset"] = f"not used: {no_dataset}"
    return result
