"""Evaluation suites for skill-discovery agents (METRA, LSD, DIAYN, ...): ``coverage``, ``goal_reaching`` and
``downstream``.

Both follow the METRA paper's protocol and work with any agent that has the skill hooks
``skill_dim``, ``sample_skills(n, rng)`` and ``act_with_skill(obs, z, deterministic)``; goal reaching also
uses ``goal_skill(obs, goal_obs)`` when the agent has it, else z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||
from ``phi(obs)``. An agent without the hooks gets a ValueError. An env that cannot support a suite (no
``info["xy"]`` for coverage; no way to build a goal observation for goal reaching) gets a result with
no scalars and a ``skipped`` reason, so an agent's default suites never stop a training run on such an env.

* ``coverage`` ("policy state coverage"): 48 trajectories with skills from the agent's prior (discrete
  skills: every skill equally often), deterministic policy, one env per trajectory stepped in lockstep.
  Score: the number of distinct 1 x 1 bins (floor(x), floor(y)) of ``info["xy"]`` visited, the reset
  state included, on the axes the spec counts (``EnvSpec.coverage_axes``: x only for planar runners,
  Gymnasium HalfCheetah and dm_control cheetah). With ``out_dir`` set it also writes a PNG of the x-y trajectories coloured by skill.
* ``goal_reaching`` (zero-shot): for each goal g of a fixed, documented goal set, one episode in which the
  skill is recomputed every step from the current observation and the goal observation. Success: the
  final x-y within the task's threshold of the goal (locomotion 3; point maze: the spec's ``goal_radius``,
  0.5 by default). Reports the success rate and the mean final distance.

* ``downstream`` (zero-shot): for each reward task of the env (``EnvSpec.reward_tasks``: dm_control quadruped walk/run/stand/jump,
  walker stand/walk/run, cheetah run; Ant and HalfCheetah their forward reward) a small search (one
  episode per candidate skill: every discrete skill, or 16 draws from the continuous prior), then the
  best skill's mean return over fresh episodes, beside a uniform random policy's. METRA's paper reaches
  downstream tasks through a hierarchical controller over skills; the search is the zero-shot version
  that needs no training. Too long for periodic evaluation: ``rl-eval`` runs it (``report_suites``).

Goal sets and goal observations (the observation "at" the goal, to feed phi), from ``EnvSpec.goal_task``:

* point maze: up to 12 free-cell centres, evenly spaced (``np.linspace``) through the free cells ordered
  by (x, y), the start cell left out; the observation is the x-y itself.
* Ant / HalfCheetah with ``xy_in_obs=true`` (METRA's setting): the current observation with its position
  entries (Ant: x, y; HalfCheetah: x) replaced by the goal's, the rest of the state unchanged. Goals: Ant
  the 8 points at radius 10 around the origin, HalfCheetah x in {-20, -10, 10, 20}; threshold 3 (our
  choice: the paper does not publish its goal set).
* everything else (dm_control, pixels, envs without the position in the observation): skipped, since
  an observation of "being at g" cannot be built without simulating the robot there.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import GoalPrompted, SkillAgent, SkillRepresentation, contract_members, missing_members
from envs import EnvSpec
from envs.base import GoalTask
from runners.episodes import Policy, play_episodes
from runners.suite_registry import EvalContext, register_suite

COVERAGE_TRAJECTORIES = 48


def check_skill_agent(agent: Any, suite: str, needs: tuple[type, ...] = ()) -> None:
    """A one-line ValueError unless ``agent`` is a ``SkillAgent`` meeting the further contracts ``needs``."""
    contracts = (SkillAgent, *needs)
    missing = [name for c in contracts if not isinstance(agent, c) for name in missing_members(agent, c)]
    if missing:
        hooks = ", ".join(dict.fromkeys(name for c in contracts for name in contract_members(c)))
        raise ValueError(f"suite {suite!r} needs a skill agent (hooks {hooks}); agent {agent.cfg.name!r} lacks "
                         f"{', '.join(missing)}")


def x_only(spec: EnvSpec) -> bool:
    """Planar runners move along x only: their coverage counts x bins (METRA's HalfCheetah metric). The
    spec's ``coverage_axes`` say so."""
    return spec.coverage_axes() == (0,)


def rollout(spec: EnvSpec, policy: Policy, n: int, seed: int, reset_options: list[dict[str, Any]] | None = None,
            returns: list[float] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n episodes, episode i reset with seed + i and ``reset_options[i]``, stepped in lockstep with one batched
    policy call per step (``runners.episodes.play_episodes``). Returns per episode its observations and its
    ``info["xy"]`` (None where the env has no ``xy``), reset state included; ``returns``, if given, receives
    each episode's undiscounted return."""
    played = play_episodes(policy, spec, seeds=[seed + i for i in range(n)], options=reset_options, info_keys=("xy",),
                           record_obs=True)
    if returns is not None:
        returns.extend(played.returns.tolist())
    positions = [None if xy is None else xy.astype(np.float64) for xy in played.step_infos["xy"]]
    return played.observations, positions


def state_coverage(positions: list[np.ndarray], only_x: bool = False) -> int:
    """Distinct (floor(x), floor(y)) bins (floor(x) with ``only_x``) over all trajectories."""
    points = np.concatenate([p[:, :1] if only_x else p[:, :2] for p in positions])
    return len(np.unique(np.floor(points).astype(np.int64), axis=0))


class TrainingCoverage:
    """Coverage of the training episodes themselves (METRA's curves beside the policy coverage): distinct
    1 x 1 bins of ``info["xy"]`` over every finished training episode (``total``) and over the latest
    ``queue_episodes`` of them (``queue``), x only for planar runners. The bin of each step's successor
    state is counted (the final one at an episode's end)."""

    def __init__(self, num_envs: int, only_x: bool, queue_episodes: int = 100) -> None:
        self.dims = 1 if only_x else 2
        self.running: list[set[tuple[int, ...]]] = [set() for _ in range(num_envs)]
        self.queue: collections.deque[set[tuple[int, ...]]] = collections.deque(maxlen=queue_episodes)
        self.total: set[tuple[int, ...]] = set()

    def step(self, info: dict[str, Any], done: np.ndarray) -> None:
        if "xy" not in info:
            return
        xy = np.floor(np.asarray(info["xy"])[:, : self.dims]).astype(np.int64)
        final = info.get("final_info", {})
        if done.any() and "xy" in final:
            ended = done & final.get("_xy", done)
            xy[ended] = np.floor(np.asarray(final["xy"])[ended, : self.dims]).astype(np.int64)
        for i, cell in enumerate(map(tuple, xy.tolist())):
            self.running[i].add(cell)
        for i in np.flatnonzero(done):
            self.queue.append(self.running[i])
            self.total |= self.running[i]
            self.running[i] = set()

    def scalars(self) -> dict[str, float]:
        if not self.total:
            return {}
        return {"coverage_total": float(len(self.total)), "coverage_queue": float(len(set().union(*self.queue)))}

    def state_dict(self) -> dict[str, Any]:
        def arr(cells: set) -> torch.Tensor:
            return torch.tensor(sorted(cells), dtype=torch.int64).reshape(-1, self.dims)

        return {"total": arr(self.total), "queue": [arr(c) for c in self.queue]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = {tuple(c) for c in state["total"].tolist()}
        self.queue.clear()
        self.queue.extend({tuple(c) for c in cells.tolist()} for cells in state["queue"])


def skill_policy(agent: Any, skills: np.ndarray, deterministic: bool) -> Policy:
    return lambda obs, rows: agent.act_with_skill(obs, skills[rows], deterministic)


def skill_colours(skills: np.ndarray) -> np.ndarray:
    """RGB per skill: discrete one-hots by index (tab20), continuous skills by the angle of their first two
    dimensions (hsv), 1-D skills by sign."""
    from matplotlib import colormaps

    if np.all((skills == 0) | (skills == 1)) and np.all(skills.sum(axis=1) == 1):
        return colormaps["tab20"](skills.argmax(axis=1) % 20)[:, :3]
    if skills.shape[1] == 1:
        return colormaps["coolwarm"]((np.sign(skills[:, 0]) + 1) / 2)[:, :3]
    angle = (np.arctan2(skills[:, 1], skills[:, 0]) + np.pi) / (2 * np.pi)
    return colormaps["hsv"](angle)[:, :3]


def plot_trajectories(path: Path, spec: EnvSpec, positions: list[np.ndarray], colours: np.ndarray,
                      title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    walls = spec.wall_map()
    if walls is not None:
        for ix, iy in np.argwhere(walls):
            ax.add_patch(plt.Rectangle((ix, iy), 1, 1, color="0.35"))
        ax.set_xlim(0, walls.shape[0])
        ax.set_ylim(0, walls.shape[1])
    for p, colour in zip(positions, colours):
        ax.plot(p[:, 0], p[:, 1], color=colour, linewidth=1)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=colour, markersize=3)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@register_suite("coverage")
def coverage_suite(ctx: EvalContext) -> dict[str, Any]:
    """Policy state coverage of 48 skill trajectories (see the module docstring)."""
    check_skill_agent(ctx.agent, "coverage")
    skills = ctx.agent.sample_skills(COVERAGE_TRAJECTORIES, np.random.default_rng(ctx.seed))
    _, positions = rollout(ctx.env, skill_policy(ctx.agent, skills, deterministic=True), len(skills), ctx.seed)
    if positions[0] is None:
        return {"scalars": {}, "skipped": f"env {ctx.env.describe()} reports no info['xy']"}
    only_x = x_only(ctx.env)
    bins = state_coverage(positions, only_x)
    result: dict[str, Any] = {"scalars": {"state_coverage": float(bins)}, "trajectories": len(skills),
                              "x_only": only_x}
    if ctx.out_dir is not None:
        path = Path(ctx.out_dir) / f"coverage_{ctx.env.describe()}_step{ctx.step}.png"
        plot_trajectories(path, ctx.env, positions, skill_colours(skills),
                          f"{ctx.agent.cfg.name}: {bins} bins, step {ctx.step}")
        result["plot"] = str(path)
    return result


# -- goal reaching ----------------------------------------------------------------------------------------


def goal_task(spec: EnvSpec) -> GoalTask:
    """``spec``'s goal-reaching task (``EnvSpec.goal_task``); ValueError (naming the reason) where goal
    observations cannot be built."""
    task = spec.goal_task()
    if task is None:
        raise ValueError(f"goal reaching needs the position in the observation (the point maze, or ant/halfcheetah "
                         f"with env.xy_in_obs=true); env {spec.describe()} has no goal observation")
    return task


def goal_prompt(agent: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The agent's own goal prompt, else METRA's z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||."""
    if isinstance(agent, GoalPrompted):
        return agent.goal_skill

    def prompt(obs: np.ndarray, goal_obs: np.ndarray) -> np.ndarray:
        direction = agent.phi(goal_obs) - agent.phi(obs)
        return (direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-8)).astype(np.float32)

    return prompt


def reach_goals(spec: EnvSpec, policy_for_goals: Callable[[np.ndarray, Callable], Policy],
                seed: int) -> dict[str, Any]:
    """Play one episode per goal of ``spec``'s goal set; ``policy_for_goals(goals, goal_observation)``
    builds the policy. The point maze also gets the goal as its task (``reset(options={"goal": g})``).
    ValueError where ``spec`` has no goal task (see ``goal_task``)."""
    task = goal_task(spec)
    goals, threshold = task.goals, task.threshold
    _, positions = rollout(spec, policy_for_goals(goals, task.goal_observation), len(goals), seed, task.reset_options)
    final = np.array([np.linalg.norm(p[-1, :2] - g) for p, g in zip(positions, goals)])
    return {
        "scalars": {"success_rate": float(np.mean(final < threshold)), "final_distance_mean": float(final.mean())},
        "goals": goals.tolist(), "final_distances": final.tolist(), "threshold": threshold,
    }


@register_suite("goal_reaching")
def goal_reaching_suite(ctx: EvalContext) -> dict[str, Any]:
    """Zero-shot goal reaching with the skill recomputed from phi every step (see the module docstring)."""
    check_skill_agent(ctx.agent, "goal_reaching", (SkillRepresentation,))
    prompt = goal_prompt(ctx.agent)

    def policy_for_goals(goals: np.ndarray, goal_observation: Callable) -> Policy:
        def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
            z = prompt(obs, goal_observation(obs, goals[rows]))
            return ctx.agent.act_with_skill(obs, z, ctx.deterministic)

        return policy

    try:
        goal_task(ctx.env)
    except ValueError as exc:
        return {"scalars": {}, "skipped": str(exc)}
    return reach_goals(ctx.env, policy_for_goals, ctx.seed)


# -- zero-shot downstream returns -------------------------------------------------------------------------

SEARCH_SKILLS = 16  # candidate skills of the search (every skill when there are at most 32 discrete ones)


def reward_tasks(spec: EnvSpec) -> dict[str, EnvSpec]:
    """The env's reward tasks (``EnvSpec.reward_tasks``), each as a spec of the same dynamics (dm_control: the
    domain's tasks; Gymnasium MuJoCo: its own forward-running reward); ValueError for an env without any."""
    tasks = spec.reward_tasks()
    if not tasks:
        raise ValueError(f"env {spec.describe()} has no downstream reward tasks (dm_control quadruped, walker, "
                         f"cheetah, ant, halfcheetah)")
    return tasks


def candidate_skills(agent: Any, rng: np.random.Generator) -> np.ndarray:
    """The skills the search tries: every discrete skill (up to 32), else SEARCH_SKILLS draws from the prior."""
    if getattr(agent.cfg, "discrete_skills", False) and agent.skill_dim <= 32:
        return np.eye(agent.skill_dim, dtype=np.float32)
    return agent.sample_skills(SEARCH_SKILLS, rng)


def random_policy(spec: EnvSpec, seed: int) -> Policy:
    env = spec.make()
    space = env.action_space
    env.close()
    space.seed(seed)
    return lambda obs, rows: np.stack([space.sample() for _ in rows])


@register_suite("downstream")
def downstream_suite(ctx: EvalContext) -> dict[str, Any]:
    """Zero-shot returns on the env's reward tasks with the best skill of a small search, beside a uniform
    random policy. Per task: one episode with each candidate skill, the best candidate's return is then
    measured on ``ctx.episodes`` fresh episodes (so the reported return carries no selection bias)."""
    check_skill_agent(ctx.agent, "downstream")
    try:
        tasks = reward_tasks(ctx.env)
    except ValueError as exc:
        return {"scalars": {}, "skipped": str(exc)}
    candidates = candidate_skills(ctx.agent, np.random.default_rng(ctx.seed))
    episodes = max(ctx.episodes, 1)
    scalars: dict[str, float] = {}
    best_skills: dict[str, list[float]] = {}
    for task, spec in tasks.items():
        search: list[float] = []
        rollout(spec, skill_policy(ctx.agent, candidates, ctx.deterministic), len(candidates), ctx.seed, returns=search)
        best = candidates[int(np.argmax(search))]
        skill_returns: list[float] = []
        rollout(spec, skill_policy(ctx.agent, np.repeat(best[None], episodes, axis=0), ctx.deterministic), episodes,
                ctx.seed + 10_000, returns=skill_returns)
        random_returns: list[float] = []
        rollout(spec, random_policy(spec, ctx.seed), episodes, ctx.seed + 10_000, returns=random_returns)
        scalars[f"return/{task}"] = float(np.mean(skill_returns))
        scalars[f"random_return/{task}"] = float(np.mean(random_returns))
        best_skills[task] = best.tolist()
    return {"scalars": scalars, "best_skills": best_skills, "search_candidates": len(candidates), "episodes": episodes}
