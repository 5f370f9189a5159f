"""The episode primitive (runners.episodes.play_episodes) and the env-spec hooks runners ask instead of
testing an env's family.

``play_episodes`` is checked on a hand-made env whose episode lengths, returns and per-step infos are known
in closed form: lengths exact, results in the order given, the policy asked once per step for exactly the
running episodes, frames only on request, and the Ray back-end identical to the local one for the same seeds.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import ray

from envs import ENVS
from envs.base import EnvSpec
from envs.dmc import DMCSpec
from envs.locomotion import MujocoLocomotionSpec
from envs.maze_spec import MazeSpec
from envs.pointmaze import LAYOUTS, PointMazeSpec, parse_layout
from runners.episodes import Episodes, ModulePolicy, StepBatch, agent_policy, play_episodes
from runners.ray_rollout import ray_session

# ---- a tiny env with known episode lengths --------------------------------------------------------------

ENV_ID = "test/EpisodeLength-v0"


class EpisodeLengthEnv(gym.Env):
    """An episode on level L lasts exactly L steps (terminated for odd L, truncated for even L). Without a
    level, L is drawn from the seeded generator: ``u = rng.random()`` then ``L = rng.integers(1, 5)``; with a
    level, only ``u``. Observation ``(L, t, u)``; reward ``t + action + u``; ``info["xy"] = (t, L)``,
    ``info["level"] = L``; the rgb frame is filled with ``t``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (), np.float64)

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.u = 0, float(self.np_random.random())
        self.level = int(options["level"]) if options and "level" in options else int(self.np_random.integers(1, 5))
        return self._obs(), self._info()

    def step(self, action):
        self.t += 1
        ended = self.t >= self.level
        return self._obs(), self.t + float(action) + self.u, ended and self.level % 2 == 1, \
            ended and self.level % 2 == 0, self._info()

    def render(self) -> np.ndarray:
        return np.full((2, 2, 3), self.t, dtype=np.uint8)

    def _obs(self) -> np.ndarray:
        return np.array([self.level, self.t, self.u], dtype=np.float32)

    def _info(self) -> dict[str, Any]:
        return {"xy": np.array([self.t, self.level], dtype=np.float64), "level": self.level}


@dataclass
class EpisodeLengthSpec(EnvSpec):
    """Registers its env in whichever process builds it (a Ray worker too): workers cannot import a test file,
    so this module is pickled by value."""

    name: str = "episode_length"

    def gym_id(self) -> str:
        return ENV_ID

    def make(self, render_mode: str | None = None, **overrides: Any) -> gym.Env:
        if ENV_ID not in gym.registry:
            gym.register(ENV_ID, entry_point=EpisodeLengthEnv)
        return gym.make(ENV_ID, render_mode=render_mode, **overrides)


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class HalfLevel:
    """action = 0.5 * L, row by row (exact for any batch), recording each call's rows."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        self.calls.append(rows.tolist())
        return 0.5 * obs[:, 0].astype(np.float64)


def row_index(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """action = the episode's index in the whole set (a per-episode policy, e.g. one genome each)."""
    return rows.astype(np.float64)


def expected_return(level: int, u: float) -> float:
    """sum over t = 1..L of (t + 0.5 L + u)."""
    return level * (level + 1) / 2 + 0.5 * level * level + level * u


def seeded_u_and_level(seed: int) -> tuple[float, int]:
    rng = np.random.default_rng(seed)  # gymnasium's np_random for an int seed
    return float(rng.random()), int(rng.integers(1, 5))


SPEC = EpisodeLengthSpec()

# ---- the local loop -----------------------------------------------------------------------------------


def test_levels_play_in_lockstep_with_exact_lengths_returns_and_order():
    levels = [3, 1, 4, 2]
    policy = HalfLevel()
    played = play_episodes(policy, SPEC, levels=levels, seed=10, info_keys=("xy",))
    np.testing.assert_array_equal(played.lengths, levels)
    u = [seeded_u_and_level(10 + k)[0] for k in range(4)]
    np.testing.assert_allclose(played.returns, [expected_return(lv, uk) for lv, uk in zip(levels, u)], rtol=1e-12)
    # one call per step with exactly the running episodes, by their index in the level list
    assert policy.calls == [[0, 1, 2, 3], [0, 2, 3], [0, 2], [2]]
    assert [info["level"] for info in played.final_infos] == levels
    for level, xy in zip(levels, played.step_infos["xy"]):
        np.testing.assert_array_equal(xy, [[t, level] for t in range(level + 1)])  # reset included
    assert played.frames is None and played.observations is None


def test_seeds_give_one_episode_each_deterministically():
    seeds = [5, 6, 7, 8, 9, 10]
    first = play_episodes(HalfLevel(), SPEC, seeds=seeds, record_obs=True)
    again = play_episodes(HalfLevel(), SPEC, seeds=seeds, record_obs=True)
    drawn = [seeded_u_and_level(s) for s in seeds]
    np.testing.assert_array_equal(first.lengths, [lv for _, lv in drawn])
    np.testing.assert_allclose(first.returns, [expected_return(lv, u) for u, lv in drawn], rtol=1e-12)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert [o.shape for o in first.observations] == [(lv + 1, 3) for _, lv in drawn]
    # the same seeds in another order give the same episodes, reordered
    reordered = play_episodes(HalfLevel(), SPEC, seeds=seeds[::-1])
    np.testing.assert_array_equal(reordered.returns, first.returns[::-1])


def test_reset_options_levels_and_step_callback():
    steps: list[StepBatch] = []
    played = play_episodes(HalfLevel(), SPEC, seeds=[0, 1], options=[{"level": 2}, None], on_step=steps.append)
    assert played.lengths[0] == 2 and played.lengths[1] == seeded_u_and_level(1)[1]
    totals = np.zeros(2)
    for batch in steps:
        np.add.at(totals, batch.rows, batch.rewards)
    np.testing.assert_allclose(totals, played.returns)
    ends = [(int(r), bool(te), bool(tr)) for b in steps for r, te, tr in zip(b.rows, b.terminated, b.truncated) if te or tr]
    assert (0, False, True) in ends  # level 2 (even) ends by truncation


def test_frames_only_on_request():
    levels = [2, 3]
    final = play_episodes(HalfLevel(), SPEC, levels=levels, render="final")
    assert [[int(f[0, 0, 0]) for f in frames] for frames in final.frames] == [[2], [3]]
    every = play_episodes(HalfLevel(), SPEC, levels=levels, render="all")
    assert [[int(f[0, 0, 0]) for f in frames] for frames in every.frames] == [[0, 1, 2], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="unknown render"):
        play_episodes(HalfLevel(), SPEC, levels=levels, render="video")


def test_agents_play_through_their_act_and_bad_arguments_are_named():
    class Agent:
        def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
            assert deterministic
            return np.zeros(len(obs))

    played = play_episodes(agent_policy(Agent(), deterministic=True), SPEC, levels=[1, 2])
    u = [seeded_u_and_level(k)[0] for k in range(2)]
    np.testing.assert_allclose(played.returns, [1 + u[0], 1 + 2 + 2 * u[1]])

    class PerEnvAgent:  # acts with the index of the env row, as a skill agent's act picks env k's skill
        def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
            return np.arange(len(obs), dtype=np.float64)

    levels = [3, 1, 2]  # episode 1 ends first: episode 2 must still act as row 2, not 1
    played = play_episodes(agent_policy(PerEnvAgent()), SPEC, levels=levels)
    u = [seeded_u_and_level(k)[0] for k in range(3)]
    np.testing.assert_allclose(played.returns, [lv * (lv + 1) / 2 + lv * k + lv * uk
                                                for k, (lv, uk) in enumerate(zip(levels, u))])
    with pytest.raises(ValueError, match="needs levels or seeds"):
        play_episodes(HalfLevel(), SPEC)
    with pytest.raises(ValueError, match="2 levels but 3 seeds"):
        play_episodes(HalfLevel(), SPEC, levels=[1, 2], seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="unknown episode back-end 'async'"):
        play_episodes(HalfLevel(), SPEC, levels=[1], backend="async")
    with pytest.raises(ValueError, match="returned 1 actions for 2"):
        play_episodes(lambda obs, rows: np.zeros(1), SPEC, levels=[1, 2])


def test_a_torch_module_plays_and_travels_as_its_weights():
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(3, 1)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[0.5, 0.0, 0.0]]))
        module.bias.zero_()
    copy = pickle.loads(pickle.dumps(ModulePolicy(module)))  # what a Ray worker receives
    levels = [2, 3]
    u = [seeded_u_and_level(k)[0] for k in range(2)]
    for policy in (ModulePolicy(module), copy):
        played = play_episodes(policy, SPEC, levels=levels)
        np.testing.assert_allclose(played.returns, [expected_return(lv, uk) for lv, uk in zip(levels, u)], rtol=1e-6)


# ---- the Ray back-end ---------------------------------------------------------------------------------


def assert_same(a: Episodes, b: Episodes) -> None:
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert [i["level"] for i in a.final_infos] == [i["level"] for i in b.final_infos]
    for x, y in zip(a.step_infos["xy"], b.step_infos["xy"], strict=True):
        np.testing.assert_array_equal(x, y)
    for fa, fb in zip(a.frames, b.frames, strict=True):
        np.testing.assert_array_equal(np.stack(fa), np.stack(fb))


def test_ray_back_end_matches_the_local_loop():
    running_before = ray.is_initialized()
    with ray_session(num_cpus=2):  # embedded Ray on 127.0.0.1 (unless one runs), held across the calls below
        check_ray_back_end()
    assert ray.is_initialized() == running_before, "the session ends the Ray it started, and only that"


def check_ray_back_end() -> None:
    levels = [4, 1, 3, 2, 1]
    kwargs = {"levels": levels, "seed": 3, "info_keys": ("xy",), "render": "final"}
    local = play_episodes(HalfLevel(), SPEC, **kwargs)
    remote = play_episodes(HalfLevel(), SPEC, backend="ray", num_workers=2, **kwargs)
    assert_same(local, remote)
    np.testing.assert_array_equal(remote.lengths, levels)  # chunks joined in the order given
    # workers see the episodes' indices in the whole set, not in their chunk: return L (L + 1) / 2 + L k + L u
    by_row = play_episodes(row_index, SPEC, levels=levels, seed=3, backend="ray", num_workers=2).returns
    u = [seeded_u_and_level(3 + k)[0] for k in range(len(levels))]
    np.testing.assert_allclose(by_row, [lv * (lv + 1) / 2 + lv * k + lv * uk for k, (lv, uk) in enumerate(zip(levels, u))])
    seeds = [11, 12, 13]
    assert_same(play_episodes(HalfLevel(), SPEC, seeds=seeds, info_keys=("xy",), render="final"),
                play_episodes(HalfLevel(), SPEC, seeds=seeds, info_keys=("xy",), render="final", backend="ray"))
    with pytest.raises(ValueError, match="on_step runs in this process"):
        play_episodes(HalfLevel(), SPEC, levels=levels, backend="ray", on_step=print)


# ---- env-spec hooks: what the runners' family checks used to compute ------------------------------------

OLD_DOWNSTREAM = {"quadruped": ("walk", "run", "stand", "jump"), "walker": ("stand", "walk", "run"), "cheetah": ("run",)}


def old_x_only(spec: EnvSpec) -> bool:
    return getattr(spec, "robot", None) == "HalfCheetah" or getattr(spec, "domain", None) == "cheetah"


def old_reward_tasks(spec: EnvSpec) -> dict[str, EnvSpec]:
    if isinstance(spec, DMCSpec) and spec.domain in OLD_DOWNSTREAM:
        return {task: dataclasses.replace(spec, task=task) for task in OLD_DOWNSTREAM[spec.domain]}
    if isinstance(spec, MujocoLocomotionSpec):
        return {"forward": spec}
    return {}


def old_goal_task(spec: EnvSpec) -> tuple[np.ndarray, float, list | None] | None:
    if isinstance(spec, PointMazeSpec):
        walls, start = parse_layout(LAYOUTS[spec.layout])
        cells = [tuple(c) for c in np.argwhere(~walls) if tuple(c) != start]
        index = np.unique(np.linspace(0, len(cells) - 1, min(12, len(cells))).round().astype(int))
        goals = np.array([cells[i] for i in index], dtype=np.float64) + 0.5
        return goals, spec.goal_radius, [{"goal": g.tolist()} for g in goals]
    if isinstance(spec, MujocoLocomotionSpec) and spec.xy_in_obs:
        if spec.robot == "Ant":
            angles = np.arange(8) * np.pi / 4
            return 10.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1), 3.0, None
        return np.array([[x, 0.0] for x in (-20.0, -10.0, 10.0, 20.0)]), 3.0, None
    return None


def old_level_kind(spec: EnvSpec) -> str | None:
    if isinstance(spec, MazeSpec) and spec.size == 13:
        return "maze"
    return "box" if spec.level_bounds() is not None else None


VARIANTS = [*ENVS.values(), dataclasses.replace(ENVS["ant"], xy_in_obs=True),
            dataclasses.replace(ENVS["halfcheetah"], xy_in_obs=True), dataclasses.replace(ENVS["pointmaze"], layout="u"),
            dataclasses.replace(ENVS["maze"], size=9), DMCSpec(name="reacher", domain="reacher", task="easy")]


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: s.describe())
def test_spec_hooks_answer_what_the_family_checks_did(spec):
    assert (spec.coverage_axes() == (0,)) == old_x_only(spec)
    assert spec.reward_tasks() == old_reward_tasks(spec)
    assert spec.level_kind() == old_level_kind(spec)
    assert spec.mastery_return() == getattr(spec, "MASTERY_RETURN", None)
    old, new = old_goal_task(spec), spec.goal_task()
    assert (old is None) == (new is None)
    if new is not None:
        np.testing.assert_array_equal(new.goals, old[0])
        assert new.threshold == old[1] and new.reset_options == old[2]
    assert (spec.wall_map() is not None) == isinstance(spec, PointMazeSpec)


def test_goal_observations_and_declared_info_keys():
    ant = dataclasses.replace(ENVS["ant"], xy_in_obs=True).goal_task()
    obs = np.arange(12, dtype=np.float32).reshape(2, 6)
    goal_obs = ant.goal_observation(obs, ant.goals[:2])
    np.testing.assert_array_equal(goal_obs[:, 2:], obs[:, 2:])
    np.testing.assert_allclose(goal_obs[:, :2], [[10, 0], [10 / np.sqrt(2), 10 / np.sqrt(2)]], rtol=1e-6)
    cheetah = dataclasses.replace(ENVS["halfcheetah"], xy_in_obs=True).goal_task()
    np.testing.assert_array_equal(cheetah.goal_observation(obs, cheetah.goals[:2])[:, 1:], obs[:, 1:])
    maze = ENVS["pointmaze"].goal_task()
    np.testing.assert_array_equal(maze.goal_observation(obs[:, :2], maze.goals[:2]), maze.goals[:2].astype(np.float32))
    # every declared per-step field is in the reset info of the env the spec builds (and "xy" gives coverage)
    for name in ("pointmaze", "maze", "bipedal", "ant"):
        env = ENVS[name].make()
        try:
            _, info = env.reset(seed=0)
        finally:
            env.close()
        assert set(ENVS[name].step_info_keys) <= set(info), name
        assert (ENVS[name].coverage_axes() != ()) == ("xy" in ENVS[name].step_info_keys)
