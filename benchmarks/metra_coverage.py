"""Skill discovery on the point maze and Ant: state coverage and zero-shot goal reaching of METRA, LSD,
DIAYN and a random policy, plus what a METRA gradient step costs next to a plain SAC step.

    python benchmarks/metra_coverage.py            # 50,000 env steps per run, 5 seeds, both envs, both skill types
    python benchmarks/metra_coverage.py --quick    # 10,000 env steps, 2 seeds, point maze, continuous skills
    python benchmarks/metra_coverage.py --steps 30000 --seeds 3 --envs ant --methods metra,random --out results.json
    python benchmarks/metra_coverage.py --skills discrete --discrete-skills 16   # every learner: 16 one-hot skills

Every learner trains with the config ``rl-run agent=NAME env=ENV`` composes (registry defaults plus the
per-env preset of ``runners.presets``: Ant is METRA's setting, 2-D skills, position in the observation,
200-step episodes) for the same number of env steps, driven by the runner's own step function
(``runners.rollout.collect_step``), then is scored by the suites of ``runners.skill_eval``: policy state
coverage (distinct 1 x 1 cells visited by 48 skill trajectories) and goal-reaching success over the
env's goal set (point maze: 12 free cells; Ant: 8 points at radius 10). The random policy is scored on
the same trajectories and goals (it ignores the goal). The point maze is the four-rooms layout (104
free cells): in the default open 5 x 5 maze a random policy already visits every cell.

Skills, like for like (``--skills``): the registry's defaults differ by method (on the point maze METRA and
LSD learn 2-D continuous skills, DIAYN 8 discrete ones, as in the papers), so a comparison of the defaults
mixes the method with the skill space. Every learner therefore gets the same skills, set on top of the
composed config: ``continuous`` (``agent.skill_dim=D, agent.discrete_skills=false``, D = ``--skill-dim``, 2:
METRA's setting for Ant and the maze, z on the unit sphere; DIAYN's discriminator is then a Gaussian) and
``discrete`` (``agent.skill_dim=K, agent.discrete_skills=true``, K = ``--discrete-skills``, 8: DIAYN's setting;
METRA and LSD then use centred one-hot skills); ``both`` (the default) runs and reports each. The random
policy has no skills: it is scored once per env and shown in each table.

Step cost: seconds per ``METRAAgent.update`` (phi, lambda, reward recomputation, SAC) over seconds per
``SAC.update`` with the same networks, batch size and skill-sized context, timed alternately in one
process on the same replay batch, per env (with the first skill setting run).

Scale: the paper trains METRA on Ant for millions of env steps on a GPU; the budgets here are CPU-sized
and show the early direction only. Prints one table per env and skill setting and writes JSON: per env and
skill setting (``<env>.skills.<continuous|discrete>``, with the overrides used), ``coverage`` and
``goal_success`` by method (mean, std, per seed) and seconds per run; per env ``step_cost_ratio`` and the
timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from agents import AGENTS
from agents.random_agent import RandomAgent, RandomConfig
from agents.sac import SAC
from runners.checkpoint import seed_everything
from runners.config import compose_config
from runners.evaluation import SUITES, EvalContext
from runners.rollout import EpisodeTracker, collect_step, make_vector_env
from runners.skill_eval import COVERAGE_TRAJECTORIES, reach_goals, rollout, state_coverage

METHODS = ("metra", "lsd", "diayn", "random")
ENVS_RUN = {"pointmaze": ["env=pointmaze", "env.layout=four_rooms"], "ant": ["env=ant"]}
SKILL_TYPES = ("continuous", "discrete")
EVAL_SEED = 1_000_003


def skill_overrides(skills: str, skill_dim: int, discrete_skills: int) -> list[str]:
    """The agent overrides that give every learner the same skills: ``continuous`` D-dimensional or ``discrete``
    one-hot over K."""
    if skills == "continuous":
        return [f"agent.skill_dim={skill_dim}", "agent.discrete_skills=false"]
    if skills == "discrete":
        return [f"agent.skill_dim={discrete_skills}", "agent.discrete_skills=true"]
    raise ValueError(f"unknown skill type {skills!r}; choose one of: {', '.join(SKILL_TYPES)}")


def configure(method: str, env: str, skills: list[str] | None = None):
    """(env spec, agent config) as ``rl-run agent=method [skills]`` composes them; the random policy plays METRA's
    env."""
    spec = OmegaConf.to_object(compose_config(["agent=metra", *ENVS_RUN[env]]).env)
    if method == "random":
        return spec, None
    return spec, OmegaConf.to_object(compose_config([f"agent={method}", *ENVS_RUN[env], *(skills or [])]).agent)


def train(method: str, env: str, steps: int, seed: int, skills: list[str] | None = None):
    """A learner trained for ``steps`` env steps exactly as ``rl-run`` drives it (one env, sync)."""
    seed_everything(seed)
    spec, cfg = configure(method, env, skills)
    envs = make_vector_env(spec, 1, "sync", seed)
    agent = AGENTS[method][1](cfg, envs.single_observation_space, envs.single_action_space, 1, torch.device("cpu"))
    agent.seed(seed)
    tracker = EpisodeTracker(1)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        obs, _, _ = collect_step(agent, envs, obs, spec.provides_final_obs, tracker)
    envs.close()
    return agent


def score_random(env: str, seed: int) -> tuple[float, float]:
    spec, _ = configure("random", env)
    agent = RandomAgent(RandomConfig(), None, spec.make().action_space, 1, None)
    agent.seed(seed)

    def act(obs, rows):
        return agent.act(obs)

    _, positions = rollout(spec, act, COVERAGE_TRAJECTORIES, EVAL_SEED)
    goals = reach_goals(spec, lambda goals, goal_obs: act, EVAL_SEED)
    return float(state_coverage(positions)), goals["scalars"]["success_rate"]


def run_one(job: tuple[str, str, str, list[str], int, int]) -> tuple[str, str, str, int, float, float, float]:
    """(env, skill setting, method, seed, coverage, goal success, seconds) of one run; the random policy ignores
    the skill setting."""
    env, setting, method, skills, seed, steps = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if method == "random":
        coverage, success = score_random(env, seed)
    else:
        agent = train(method, env, steps, seed, skills)
        ctx = EvalContext(agent=agent, env=configure(method, env)[0], episodes=1, seed=EVAL_SEED, deterministic=True,
                          out_dir=None, step=steps)
        coverage = SUITES["coverage"](ctx)["scalars"]["state_coverage"]
        success = SUITES["goal_reaching"](ctx)["scalars"]["success_rate"]
    return env, setting, method, seed, coverage, success, time.perf_counter() - t0


def step_cost(env: str, skills: list[str], repeats: int = 200) -> dict[str, float]:
    """Seconds per METRA and per plain SAC gradient step (same sizes), timed alternately on one batch."""
    torch.set_num_threads(1)
    agent = train("metra", env, 1_000, 0, skills)  # fills the replay buffer; no updates yet (learning_starts 2,000)
    cfg = agent.cfg
    spec, _ = configure("metra", env)
    probe = spec.make()
    sac = SAC(cfg, probe.observation_space, probe.action_space, "cpu", context_dim=cfg.skill_dim)
    probe.close()
    batch = agent.buffer.sample(cfg.batch_size, np.random.default_rng(0))
    sac_batch = {**batch, "context": batch["z"]}
    times = {"metra": 0.0, "sac": 0.0}
    for i in range(repeats + 10):
        for name, step in (("metra", lambda: agent.update(batch)), ("sac", lambda: sac.update(sac_batch))):
            t0 = time.perf_counter()
            step()
            if i >= 10:  # warm-up
                times[name] += time.perf_counter() - t0
    return {"metra_step_s": times["metra"] / repeats, "sac_step_s": times["sac"] / repeats,
            "step_cost_ratio": times["metra"] / times["sac"]}


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "seeds": values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 env steps, 2 seeds, point maze only")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/metra_coverage[_quick].json)")
    parser.add_argument("--steps", type=int, help="env steps per run (default 50,000; --quick 10,000)")
    parser.add_argument("--seeds", type=int, help="seeds per method (default 5; --quick 2)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list of: {', '.join(METHODS)}")
    parser.add_argument("--envs", help=f"comma list of: {', '.join(ENVS_RUN)} (default all; --quick pointmaze)")
    parser.add_argument("--skills", default="both", choices=[*SKILL_TYPES, "both"],
                        help="the skills every learner gets: continuous, discrete or both (one table each)")
    parser.add_argument("--skill-dim", type=int, default=2, help="D of the continuous skills (default 2)")
    parser.add_argument("--discrete-skills", type=int, default=8, help="K of the discrete skills (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    args = parser.parse_args(argv)
    steps = args.steps or (10_000 if args.quick else 50_000)
    n_seeds = args.seeds or (2 if args.quick else 5)
    methods = args.methods.split(",")
    envs = (args.envs or ("pointmaze" if args.quick else ",".join(ENVS_RUN))).split(",")
    for name in methods:
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; choose from: {', '.join(METHODS)}")
    for name in envs:
        if name not in ENVS_RUN:
            parser.error(f"unknown env {name!r}; choose from: {', '.join(ENVS_RUN)}")
    if args.skill_dim < 1 or args.discrete_skills < 2:
        parser.error(f"need --skill-dim >= 1 and --discrete-skills >= 2; got {args.skill_dim}, {args.discrete_skills}")
    settings = {k: skill_overrides(k, args.skill_dim, args.discrete_skills)
                for k in (SKILL_TYPES if args.skills == "both" else (args.skills,))}
    out = args.out or Path(f"benchmarks/results/metra_coverage{'_quick' if args.quick else ''}.json")

    start = time.perf_counter()
    learners = [m for m in methods if m != "random"]
    jobs = [(e, k, m, settings[k], s, steps) for e in envs for k in settings for m in learners for s in range(n_seeds)]
    jobs += [(e, "none", "random", [], s, steps) for e in envs if "random" in methods for s in range(n_seeds)]
    runs: dict = {e: {k: {m: {"coverage": [], "goal_success": [], "seconds": []} for m in methods}
                      for k in [*settings, "none"]} for e in envs}
    first = next(iter(settings))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        costs = {e: pool.submit(step_cost, e, settings[first]) for e in envs} if "metra" in methods else {}
        for env, setting, method, seed, coverage, success, seconds in pool.map(run_one, jobs):
            label = method if method == "random" else f"{method} ({setting} skills)"
            print(f"{env} {label} seed {seed}: coverage {coverage:.0f}, goal success {success:.2f} "
                  f"({seconds:.0f}s)", file=sys.stderr, flush=True)
            for key, value in (("coverage", coverage), ("goal_success", success), ("seconds", seconds)):
                runs[env][setting][method][key].append(value)
        costs = {e: c.result() for e, c in costs.items()}

    result: dict = {"steps": steps, "seeds": n_seeds, "coverage_trajectories": COVERAGE_TRAJECTORIES}
    for env in envs:
        result[env] = {"skills": {}, **costs.get(env, {})}
        if env in costs:
            result[env]["step_cost_skills"] = first
        for setting, overrides in settings.items():
            r = {**runs[env][setting], "random": runs[env]["none"]["random"]}
            result[env]["skills"][setting] = {
                "overrides": overrides,
                "coverage": {m: summary(r[m]["coverage"]) for m in methods},
                "goal_success": {m: summary(r[m]["goal_success"]) for m in methods},
                "seconds_per_run": {m: float(np.mean(r[m]["seconds"])) for m in methods},
            }
            res = result[env]["skills"][setting]
            size = f"{args.skill_dim}-D" if setting == "continuous" else f"{args.discrete_skills}"
            print(f"{env}, {size} {setting} skills for every learner ({' '.join(overrides)}): {steps} env steps per run, "
                  f"mean +- std over {n_seeds} seeds")
            print(f"{'method':<8} {'coverage (cells)':>17} {'goal success':>14} {'s/run':>6}")
            for m in methods:
                c, g = res["coverage"][m], res["goal_success"][m]
                print(f"{m:<8} {c['mean']:9.1f} +-{c['std']:5.1f} {g['mean']:7.2f} +-{g['std']:4.2f} "
                      f"{res['seconds_per_run'][m]:6.0f}" + ("  (no skills)" if m == "random" else ""))
            print()
        if env in costs:
            cost = costs[env]
            print(f"{env} gradient step ({first} skills): METRA {cost['metra_step_s'] * 1e3:.1f} ms, "
                  f"SAC {cost['sac_step_s'] * 1e3:.1f} ms, ratio {cost['step_cost_ratio']:.2f}\n")
    print(f"total {time.perf_counter() - start:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
