"""Unsupervised environment design end to end: ``rl-run agent=ppo env=maze curriculum=dr|plr|dred`` runs, resumes
and ``rl-eval`` adds the zero-shot maze suites; DRED's annealed mixture and its evaluation-only episodes work
through the runner's curriculum driver; a box-level curriculum (ALP-GMM on the parametric BipedalWalker) gets
its competences from the env's score range and ``rl-eval`` plays the family's fixed test levels."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs.maze_named
from agents.ppo import PPOAgent, PPOConfig
from curricula.dred import DRED, DREDConfig
from envs import AUTORESET_MODE, ENVS
from envs.bipedal import SCORE_RANGE, BipedalSpec
from runners.checkpoint import checkpoint_paths, load_checkpoint
from runners.cli import eval_main, run_main
from runners.curriculum import CurriculumDriver
from runners.evaluation import SUITES, EvalContext
from runners.logger import read_scalars
from runners.rollout import EpisodeTracker, collect_step

MAZE_RUN = ["agent=ppo", "env=maze", "env.max_steps=16", "runner.num_envs=2", "agent.n_steps=8", "agent.n_minibatches=2",
            "agent.n_epochs=1", "eval.episodes=0", "log_every=32", "checkpoint.every=64", "progress=false", "device=cpu",
            "threads=1"]
TEACHERS = {
    "dr": ["curriculum=dr"],
    "plr": ["curriculum=plr", "curriculum.robust=true", "curriculum.buffer_size=8"],
    "dred": ["curriculum=dred", "curriculum.dataset_size=4", "curriculum.buffer_size=8", "curriculum.vae_steps=20",
             "curriculum.latent_dim=8", "curriculum.hidden_size=32", "curriculum.vae_batch_size=4",
             "curriculum.replay_prob=0.5"],
}


def rl_eval(run_dir, capsys) -> dict:
    """``rl-eval run_dir=... episodes=1``: the record it wrote (the path is its last line)."""
    capsys.readouterr()
    assert eval_main([f"run_dir={run_dir}", "episodes=1"]) == 0, capsys.readouterr().err
    path = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("wrote ")
    return json.loads(open(path).read())


def tags(run_dir) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for row in read_scalars(run_dir):
        out.setdefault(row["tag"], {})[row["step"]] = row["value"]
    return out


@pytest.mark.parametrize("teacher", sorted(TEACHERS))
def test_maze_curriculum_runs_resumes_and_rl_eval_adds_the_maze_suites(teacher, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / teacher
    args = [*MAZE_RUN, *TEACHERS[teacher], f"run_dir={run_dir}"]
    assert run_main([*args, "steps=64"]) == 0, capsys.readouterr().err
    first = load_checkpoint(checkpoint_paths(run_dir)[-1])
    # every finished episode went to the teacher (value scores: once its rollout was learnt from)
    assert first["step"] == 64 and 0 < first["curriculum"]["episodes"] <= first["episodes"]
    assert run_main([*args, "steps=128"]) == 0, capsys.readouterr().err
    final = load_checkpoint(checkpoint_paths(run_dir)[-1])
    assert final["step"] == 128 and final["curriculum"]["episodes"] > first["curriculum"]["episodes"]
    teacher_first, teacher_final = first["curriculum"]["teacher"], final["curriculum"]["teacher"]
    assert teacher_final["episodes"] == final["curriculum"]["episodes"]  # the resumed teacher counted on
    if teacher != "dr":  # value-scored teachers get each episode's length with its score (DR: returns only)
        assert teacher_final["env_steps"] > teacher_first["env_steps"] > 0
    logged = tags(run_dir)
    assert sorted(logged["curriculum/teacher_episodes"]) == [32, 64, 96, 128]
    if teacher == "dred":
        # the annealed weight of the grounded distribution follows the env steps of the scored episodes over
        # the run's steps (fit_to_run), through the driver's lengths: c = env_steps / steps at the checkpoint
        assert 0 < logged["curriculum/coef"][128] == pytest.approx(teacher_final["env_steps"] / 128)
    # rl-eval adds the env's report suites: the named mazes and the held-out structured levels
    monkeypatch.setattr(envs.maze_named, "named_maze_steps", lambda name: 10)  # dcd's limits go up to 20,402 steps
    record = rl_eval(run_dir, capsys)
    assert record["step"] == 128
    results = record["results"]
    assert {"mazes", "heldout"} <= results.keys() and "test_levels" not in results  # heldout is the maze's test set
    heldout = results["heldout"]
    assert heldout["structures"]["all"]["episodes"] == 100 and len(heldout["returns"]) == 100
    assert heldout["scalars"]["solve_rate"] == pytest.approx(np.mean(np.array(heldout["returns"]) > 0))
    mazes = results["mazes"]["mazes"]
    assert len(mazes) == 10 and all(row["max_steps"] == 10 and row["episodes"] == 1 for row in mazes.values())
    assert list((run_dir / "eval").glob("heldout_step128.png")) and list((run_dir / "eval").glob("mazes_step128.md"))


def maze_envs(num_envs: int, max_steps: int) -> gym.vector.VectorEnv:
    spec = dataclasses.replace(ENVS["maze"], max_steps=max_steps)
    return gym.vector.SyncVectorEnv([spec.make for _ in range(num_envs)], autoreset_mode=AUTORESET_MODE)


def test_dred_generated_levels_are_played_without_gradient_through_the_driver():
    """replay_prob 0: once the four dataset levels were played, every level is a generated one, evaluation
    only. PPO learns from the dataset levels' rollouts and takes no gradient step on the later ones, while
    their episodes still reach the teacher (their steps count towards the annealing)."""
    torch.manual_seed(0)
    num_envs, max_steps = 2, 8
    envs = maze_envs(num_envs, max_steps)
    agent = PPOAgent(PPOConfig(n_steps=8, n_epochs=1, n_minibatches=1, hidden_sizes=[16]), envs.single_observation_space,
                     envs.single_action_space, num_envs, torch.device("cpu"))
    teacher = DRED(DREDConfig(dataset_size=4, buffer_size=16, vae_steps=50, latent_dim=8, hidden_size=32,
                              vae_batch_size=4, replay_prob=0.0, anneal_steps=1000), seed=0)
    driver = CurriculumDriver(teacher, num_envs, student=agent)
    tracker = EpisodeTracker(num_envs)
    obs, _ = driver.reset(envs, seed=0)
    updates = []  # (learn_fraction, parameters changed)
    played = 0  # env steps of finished episodes
    for _ in range(8 * 8):
        before = [p.detach().clone() for p in agent.policy.parameters()]
        obs, metrics, info = collect_step(agent, envs, obs, True, tracker)
        finished = tracker.drain()
        played += sum(length for *_, length in finished)
        driver.on_step(envs, info, finished, None)
        if metrics or agent.updates > len(updates):
            changed = not all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
            updates.append((metrics.get("learn_fraction"), changed))
    envs.close()
    assert len(updates) == 8
    assert updates[0][0] in (None, 1.0) and updates[0][1]  # dataset levels: learnt from (no mask needed yet)
    assert teacher.generated > 0 and teacher.log_scalars()["generated_fraction"] > 0.5
    assert updates[-1] == (0.0, False) and updates[-2] == (0.0, False)  # generated levels only: no gradient
    assert driver.episodes == teacher.episodes >= 8 and 8 * teacher.episodes >= teacher.env_steps > 0
    assert teacher.env_steps <= played
    assert teacher.coef == pytest.approx(teacher.env_steps / 1000)


def test_alp_gmm_competences_are_returns_rescaled_by_the_env_score_range_and_rl_eval_plays_the_test_levels(
        tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["agent=random", "env=bipedal", "curriculum=alp_gmm", "env.max_episode_steps=30", "runner.num_envs=2",
            "eval.episodes=0", "log_every=60", "progress=false", "steps=120", f"run_dir={run_dir}"]
    assert run_main(args) == 0, capsys.readouterr().err
    state = load_checkpoint(checkpoint_paths(run_dir)[-1])["curriculum"]["teacher"]
    returns = [r["value"] for r in read_scalars(run_dir) if r["tag"] == "train/episode_return"]
    low, high = SCORE_RANGE
    assert (low, high) == (-150.0, 350.0) and len(returns) == 4  # 120 steps of 2 envs, 30-step episodes
    competences = state["competences"].numpy() if hasattr(state["competences"], "numpy") else state["competences"]
    expected = np.clip((np.array(returns) - low) / (high - low), 0, 1)
    assert sorted(np.asarray(competences).tolist()) == pytest.approx(sorted(expected.tolist()), abs=1e-6)
    assert not np.allclose(expected, np.array(returns))  # the rescaling did something
    # rl-eval of a curriculum run on an env with a test set adds it
    record = rl_eval(run_dir, capsys)
    suite = record["results"]["test_levels"]
    np.testing.assert_allclose(suite["levels"], BipedalSpec().test_levels())
    assert len(suite["returns"]) == 50
    assert suite["scalars"]["percent_mastered"] == 100.0 * np.mean(np.array(suite["returns"]) > 230)


class StandStill:
    """Zero torque on every joint: the walker's return depends only on the level it stands on."""

    eval_suites = ()

    def act(self, obs, deterministic=True):
        return np.zeros((len(obs), 4), np.float32)


def test_test_levels_suite_plays_each_test_level_with_its_seed():
    spec = BipedalSpec(max_episode_steps=20)
    ctx = EvalContext(agent=StandStill(), env=spec, episodes=1, seed=7, deterministic=True, out_dir=None, step=0)
    result = SUITES["test_levels"](ctx)
    levels = spec.test_levels()
    np.testing.assert_array_equal(np.array(result["levels"]), levels)
    expected = []
    for k in (0, 17, 49):  # level k with seed 7 + k, one env at a time
        env = spec.make()
        env.reset(seed=7 + k, options={"level": levels[k]})
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(4, np.float32))
            total += reward
            done = terminated or truncated
        env.close()
        expected.append(total)
    np.testing.assert_allclose([result["returns"][k] for k in (0, 17, 49)], expected, rtol=1e-6)
    assert result["scalars"]["return_mean"] == pytest.approx(np.mean(result["returns"]))
    assert result["scalars"]["percent_mastered"] == 0.0
