"""The environment layer: Gymnasium compliance, seeding, info["xy"], maze geometry, time limits, the
procgen vector adapter and one-line errors for bad names."""

from __future__ import annotations

import functools
import math
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

import envs
from envs import ENVS
from envs.dmc import DMCSpec, available_tasks
from envs.locomotion import MujocoLocomotionSpec
from envs.minigrid_env import MiniGridSpec
from envs.pointmaze import LAYOUTS, PointMazeEnv, PointMazeSpec
from envs.procgen_env import GAMES, ProcgenSpec, ProcgenVectorEnv
from envs.registration import REGISTERED_IDS, register_all

# Warnings check_env may give for these envs that are not faults: it always sees gym.make's wrappers,
# and MuJoCo state observations are unbounded.
BENIGN_WARNINGS = ("different from the unwrapped", "infinity")


@functools.cache
def gl_problem() -> str | None:
    """None if MuJoCo can render offscreen here, else the reason (for skips)."""
    try:
        env = gym.make("openrl/DMC-v0", domain="cartpole", task="balance", render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        env.close()
        assert frame.shape[-1] == 3
    except Exception as exc:  # noqa: BLE001  (any failure to get a GL context means: no rendering here)
        return f"no offscreen OpenGL ({type(exc).__name__}: {exc}); install libegl1 and set MUJOCO_GL=egl"
    return None


def require_gl() -> None:
    if gl_problem():
        pytest.skip(gl_problem())


def rollout(env: gym.Env, seed: int, steps: int):
    """Observations, rewards and xy of ``steps`` random-action steps after ``reset(seed)``."""
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, xys = [obs], [], [info["xy"]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        xys.append(info["xy"])
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), np.array(xys)


def assert_passes_check_env(env: gym.Env, skip_render_check: bool = False) -> None:
    """check_env without errors or warnings (other than the benign ones)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=skip_render_check)
    env.close()
    problems = [str(w.message) for w in caught
                if not issubclass(w.category, ResourceWarning)
                and not any(b in str(w.message) for b in BENIGN_WARNINGS)]
    assert not problems, problems


# ---- Gymnasium compliance --------------------------------------------------------------------------

CHECK_CASES = [
    # (id, kwargs, renders with MuJoCo's GL, render modes checkable headless)
    ("openrl/DMC-v0", {"domain": "quadruped", "task": "walk"}, True, True),
    ("openrl/DMC-v0", {"domain": "quadruped", "task": "jump"}, True, True),
    ("openrl/DMC-v0", {"domain": "walker", "task": "walk", "action_repeat": 2}, True, True),
    ("openrl/Ant-v0", {}, True, False),  # Gymnasium's metadata also lists "human" (needs a display)
    ("openrl/HalfCheetah-v0", {"xy_in_obs": True}, True, False),
    ("openrl/PointMaze-v0", {"layout": "four_rooms", "goal": [9.5, 1.5]}, False, True),
    ("openrl/MiniGrid-v0", {"obs": "image"}, False, False),  # "human" again
    ("openrl/MiniGrid-v0", {"obs": "flat"}, False, False),
    ("openrl/MiniGrid-v0", {"obs": "full"}, False, False),
    ("openrl/Procgen-v0", {"game": "coinrun"}, False, True),
    ("openrl/ParametricBipedal-v0", {}, False, False),  # "human" listed, so render not checked headless
    ("openrl/Maze-v0", {}, False, False),
    ("openrl/Maze-v0", {"obs": "flat"}, False, False),
]


@pytest.mark.parametrize("env_id, kwargs, uses_gl, render_checkable", CHECK_CASES,
                         ids=[f"{c[0]}-{'-'.join(map(str, c[1].values()))}" for c in CHECK_CASES])
def test_check_env(env_id, kwargs, uses_gl, render_checkable):
    skip_render = not render_checkable or (uses_gl and gl_problem() is not None)
    assert_passes_check_env(gym.make(env_id, **kwargs), skip_render)


def test_every_registered_id_is_checked_and_registration_is_idempotent():
    register_all()
    register_all()
    assert set(REGISTERED_IDS) == {case[0] for case in CHECK_CASES}
    assert all(env_id in gym.registry for env_id in REGISTERED_IDS)


def test_dmc_pixels():
    require_gl()
    assert_passes_check_env(gym.make("openrl/DMC-v0", domain="quadruped", task="walk", pixels=True))
    env = gym.make("openrl/DMC-v0", domain="quadruped", task="walk", pixels=True, frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 9) and obs.dtype == np.uint8
    # The first observation repeats one frame; a step shifts the stack by one frame.
    assert np.array_equal(obs[..., :3], obs[..., 6:])
    nxt, *_ = env.step(np.ones(12, dtype=np.float32))
    assert np.array_equal(nxt[..., :6], obs[..., 3:])
    env.close()


@pytest.mark.parametrize("env_id, kwargs", [("openrl/Ant-v0", {}), ("openrl/MiniGrid-v0", {}),
                                            ("openrl/PointMaze-v0", {"layout": "u"})])
def test_rgb_array_rendering(env_id, kwargs):
    if env_id == "openrl/Ant-v0":
        require_gl()
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    env.close()


def test_specs_are_structured_configs():
    for spec in ENVS.values():
        node = OmegaConf.structured(spec)
        assert OmegaConf.to_object(node) == spec
        spec.validate()


def test_describe():
    assert DMCSpec(domain="quadruped", task="walk").describe() == "quadruped-walk"
    assert PointMazeSpec(layout="u").describe() == "pointmaze-u"
    assert MiniGridSpec(id="MiniGrid-FourRooms-v0").describe() == "minigrid-FourRooms"
    assert ProcgenSpec(game="coinrun").describe() == "procgen-coinrun"
    assert MujocoLocomotionSpec(robot="HalfCheetah").describe() == "halfcheetah"


# ---- seeding and info["xy"] ------------------------------------------------------------------------

SEEDED_SPECS = [
    DMCSpec(domain="quadruped", task="walk"),
    DMCSpec(domain="cheetah", task="run"),
    MujocoLocomotionSpec(robot="Ant"),
    MujocoLocomotionSpec(robot="HalfCheetah"),
    PointMazeSpec(layout="open"),
    MiniGridSpec(id="MiniGrid-FourRooms-v0"),
]


@pytest.mark.parametrize("spec", SEEDED_SPECS, ids=lambda s: s.describe())
def test_seeded_rollouts_reproduce_and_xy_moves(spec):
    env = spec.make()
    obs_a, rew_a, xy_a = rollout(env, seed=7, steps=40)
    obs_b, rew_b, xy_b = rollout(env, seed=7, steps=40)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(xy_a, xy_b)
    obs_c, _, _ = rollout(env, seed=8, steps=0)
    assert not np.array_equal(obs_a[0], obs_c[0]), "a different seed should start differently"
    assert xy_a.dtype == np.float64 and xy_a.shape[1] == 2
    assert np.abs(xy_a - xy_a[0]).max() > 0, "random actions should move the agent"
    env.close()


def test_planar_xy_and_positions_in_observation():
    _, info = MujocoLocomotionSpec(robot="HalfCheetah").make().reset(seed=0)
    assert info["xy"][1] == 0.0
    ant = MujocoLocomotionSpec(robot="Ant", xy_in_obs=True, include_cfrc_ext=False).make()
    obs, info = ant.reset(seed=0)
    assert obs.shape == (29,)  # METRA's Ant observation: qpos with x-y, and qvel
    assert np.allclose(obs[:2], info["xy"], atol=0.1)
    obs, _, _, _, info = ant.step(ant.action_space.sample())
    assert np.allclose(obs[:2], info["xy"], atol=0.1)
    _, info = DMCSpec(domain="walker", task="walk").make().reset(seed=0)
    assert info["xy"][1] == 0.0


def test_same_step_vector_env_final_obs_and_xy():
    # The runner's vector env: at a truncation the returned obs/xy are the new episode's, the ended
    # episode's last obs and info (xy included) are in final_obs / final_info.
    spec = PointMazeSpec(layout="open", max_episode_steps=3)
    venv = gym.vector.SyncVectorEnv([spec.make, spec.make], autoreset_mode=envs.AUTORESET_MODE)
    venv.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, truncated, info = venv.step(np.ones((2, 2), dtype=np.float32))
    assert truncated.all() and not terminated.any() and info["_final_obs"].all()
    assert np.allclose(np.stack(info["final_obs"]), info["final_info"]["xy"])
    assert np.allclose(obs, info["xy"]) and not np.allclose(obs, info["final_info"]["xy"])
    venv.close()


# ---- dm_control specifics --------------------------------------------------------------------------

def test_dmc_time_limit_is_truncation():
    # dm_control's 1000 control steps with action_repeat 10: 100 env steps, then truncated.
    env = DMCSpec(domain="quadruped", task="run", action_repeat=10).make()
    env.reset(seed=0)
    for t in range(1, 101):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == 100)
    env.close()
    env = DMCSpec(domain="walker", task="walk", max_episode_steps=5).make()
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_dmc_actions_map_onto_actuator_ranges():
    env = DMCSpec(domain="quadruped", task="stand").make()
    env.reset(seed=0)
    physics = env.unwrapped._physics
    low, high = physics.model.actuator_ctrlrange.T
    assert not np.allclose(low, -high)  # quadruped's ranges are asymmetric
    for action, expected in ((np.ones(12), high), (-np.ones(12), low), (np.full(12, 5.0), high)):
        env.step(action.astype(np.float32))
        assert np.allclose(physics.data.ctrl, expected)
    env.close()


def test_quadruped_urlb_tasks_exist_and_reward_in_unit_interval():
    assert {"stand", "walk", "run", "jump"} <= set(available_tasks()["quadruped"])
    for task in ("stand", "jump"):
        _, rewards, _ = rollout(DMCSpec(domain="quadruped", task=task).make(), seed=0, steps=30)
        assert np.all((rewards >= 0) & (rewards <= 1)) and rewards.max() > 0


# ---- point maze ------------------------------------------------------------------------------------

def chord_stays_free(env: PointMazeEnv, a: np.ndarray, b: np.ndarray) -> bool:
    return all(env.is_free(*(a + (b - a) * s)) for s in np.linspace(0.0, 1.0, 21))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_pointmaze_never_enters_or_crosses_walls(layout):
    env = PointMazeEnv(layout=layout, step_size=1.0, random_start=True)
    rng = np.random.default_rng(0)
    for episode in range(4):
        _, info = env.reset(seed=episode)
        pos = info["xy"]
        for _ in range(500):
            # Mostly saturated actions: they hit walls and corners head on.
            action = rng.choice([-1.0, 1.0], size=2) if rng.random() < 0.7 else rng.uniform(-1, 1, 2)
            _, _, _, _, info = env.step(action)
            new = info["xy"]
            assert env.is_free(*new), (layout, pos, action, new)
            assert chord_stays_free(env, pos, new), (layout, pos, action, new)
            assert np.abs(new - pos).max() <= 1.0 + 1e-9
            pos = new


def test_pointmaze_no_slipping_between_diagonal_walls(monkeypatch):
    # Free cells (1, 1) and (2, 2) touch only at a corner; (2, 1) and (1, 2) are walls.
    monkeypatch.setitem(LAYOUTS, "diagonal", "####\n##.#\n#S##\n####")
    env = PointMazeEnv(layout="diagonal", step_size=1.0)
    for start in ([1.5, 1.5], [1.999, 1.999], [1.9999999, 1.5]):
        env.reset(seed=0, options={"start": start})
        for _ in range(20):
            _, _, _, _, info = env.step(np.array([1.0, 1.0]))
            assert math.floor(info["xy"][0]) == 1 and math.floor(info["xy"][1]) == 1, info["xy"]


def test_pointmaze_slides_along_walls():
    env = PointMazeEnv(layout="open", step_size=0.2)
    env.reset(seed=0, options={"start": [5.5, 3.5]})
    for _ in range(10):  # into the right wall (x = 6) while moving up
        _, _, _, _, info = env.step(np.array([1.0, 0.5]))
    x, y = info["xy"]
    assert 6.0 - 1e-6 < x < 6.0 and y == pytest.approx(4.5)


def test_pointmaze_goal_task_and_free_cells():
    env = PointMazeEnv(layout="u")
    cells = env.free_cells()
    assert len(cells) == sum(LAYOUTS["u"].count(c) for c in ".S")
    assert all(env.is_free(*(c + 0.5)) for c in cells)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(2))
    assert info["success"] is False and reward == 0.0
    _, info = env.reset(seed=0, options={"goal": [1.5, 3.5]})  # the start cell: success at once
    assert info["success"]
    _, reward, terminated, _, _ = env.step(np.zeros(2))
    assert reward == 1.0 and not terminated
    dense = gym.make("openrl/PointMaze-v0", layout="u", goal=[1.5, 1.5], goal_reward="dense",
                     terminate_on_success=True)
    dense.reset(seed=0)
    _, reward, terminated, _, info = dense.step(np.zeros(2))
    assert reward == pytest.approx(-np.linalg.norm(info["xy"] - [1.5, 1.5])) and not terminated
    with pytest.raises(ValueError, match="not in a free cell"):
        env.reset(options={"goal": [0.5, 0.5]})
    with pytest.raises(ValueError, match="not in a free cell"):
        PointMazeSpec(layout="u", goal=[2.5, 2.5]).validate()


def test_pointmaze_is_fast():
    env = PointMazeEnv(layout="four_rooms")
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (5000, 2)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    assert 5000 / (time.perf_counter() - start) > 20_000


# ---- procgen vector adapter ------------------------------------------------------------------------

def test_procgen_vector_spaces_and_dtypes():
    spec = ProcgenSpec(game="coinrun")
    venv = spec.make_native_vec(3, seed=0)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and not spec.provides_final_obs
    assert venv.single_action_space == gym.spaces.Discrete(15)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8 and obs in venv.observation_space
    obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    assert reward.shape == (3,) and terminated.dtype == bool and truncated.dtype == bool
    assert "final_obs" not in info and info["level_seed"].shape == (3,)
    venv.close()


def test_procgen_same_step_autoreset():
    # With a single level every episode starts from the same frame: the step that ends an episode
    # must already return that frame (SAME_STEP), flagged terminated, never truncated.
    venv = ProcgenVectorEnv(2, game="bossfight", num_levels=1, start_level=7)
    first_obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(200):
        obs, _, terminated, truncated, info = venv.step(rng.integers(0, 15, 2))
        assert not truncated.any()
        for i in np.flatnonzero(terminated):
            ends += 1
            assert np.array_equal(obs[i], first_obs[i])
            assert info["_prev_level_seed"][i] and info["prev_level_seed"][i] == 7
    assert ends > 0
    venv.close()


def test_procgen_seeding_reproduces():
    def run(seed):
        venv = ProcgenVectorEnv(2, game="dodgeball")
        frames = [venv.reset(seed=seed)[0]]
        rng = np.random.default_rng(1)
        for _ in range(60):
            frames.append(venv.step(rng.integers(0, 15, 2))[0])
        venv.close()
        return np.array(frames)

    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_procgen_make_vec_uses_native_adapter():
    venv = gym.make_vec("openrl/Procgen-v0", num_envs=2, game="maze")
    assert isinstance(venv.unwrapped, ProcgenVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 64, 64, 3)
    venv.close()


def test_procgen_game_list_matches_procgen():
    from procgen.env import ENV_NAMES

    assert sorted(GAMES) == sorted(ENV_NAMES) and len(GAMES) == 16


# ---- one-line errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, needles", [
    (DMCSpec(domain="quadruped", task="fly"), ["'fly'", "stand", "jump", "walk"]),
    (DMCSpec(domain="quadrupd", task="walk"), ["'quadrupd'", "quadruped", "walker"]),
    (DMCSpec(action_repeat=0), ["action_repeat"]),
    (PointMazeSpec(layout="spiral"), ["'spiral'", "four_rooms", "u"]),
    (PointMazeSpec(goal_reward="shaped"), ["'shaped'", "dense"]),
    (PointMazeSpec(step_size=2.0), ["step_size"]),
    (MujocoLocomotionSpec(robot="Hopper"), ["'Hopper'", "Ant", "HalfCheetah"]),
    (MujocoLocomotionSpec(robot="HalfCheetah", include_cfrc_ext=False), ["Ant-only", "include_cfrc_ext"]),
    (MiniGridSpec(id="MiniGrid-FourRoom-v0"), ["'MiniGrid-FourRoom-v0'", "MiniGrid-FourRooms-v0"]),
    (MiniGridSpec(obs="rgb"), ["'rgb'", "image", "flat", "full"]),
    (ProcgenSpec(game="pong"), ["'pong'"] + list(GAMES)),
    (ProcgenSpec(distribution_mode="medium"), ["'medium'", "hard"]),
    (ProcgenSpec(max_episode_steps=100), ["max_episode_steps"]),
])
def test_bad_values_are_one_clear_line(spec, needles):
    with pytest.raises(ValueError) as err:
        spec.validate()
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_envs_package_exports():
    assert envs.AUTORESET_MODE == AutoresetMode.SAME_STEP
    assert {"quadruped", "pointmaze", "minigrid", "procgen", "ant"} <= set(ENVS)
