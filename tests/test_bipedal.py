"""The parametric BipedalWalker (envs.bipedal): Gymnasium compliance, levels at reset, terrain, seeding,
the fixed test set, bodies, and one-line errors."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

from envs import ENVS
from envs.bipedal import (
    BODIES,
    MASTERY_RETURN,
    MAX_EPISODE_STEPS,
    TERRAIN_HEIGHT,
    TERRAIN_STEP,
    BipedalSpec,
    ParametricBipedalWalker,
    _box2d,
    percent_mastered,
)
from envs.registration import REGISTERED_IDS

ENV_ID = "openrl/ParametricBipedal-v0"
HEXAGON_BOUNDS = {"level_low": [0.0] * 12, "level_high": [4.0] * 12}


def make(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, **kwargs)


def terrain_top(env: gym.Env) -> float:
    """Highest point of the static terrain (ground edges and obstacles) of the current episode, metres."""
    return max((body.transform * v)[1]
               for body in env.unwrapped.terrain for f in body.fixtures for v in f.shape.vertices)


def rollout(env: gym.Env, seed: int, steps: int, level=None):
    env.action_space.seed(seed)
    options = None if level is None else {"level": level}
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), info


# ---- Gymnasium compliance ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"body": "short"}, {"body": "quadrupedal"},
                                    {"track": "hexagons", **HEXAGON_BOUNDS}],
                         ids=["default", "short", "quadrupedal", "hexagons"])
def test_check_env(kwargs):
    _box2d()  # import Box2D (and its SWIG import-time warnings) outside the recorded block
    env = make(**kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # "human" rendering needs a display; rgb_array is checked in test_render_rgb_array.
        check_env(env, skip_render_check=True)
    env.close()
    problems = [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)
                and "different from the unwrapped" not in str(w.message)]
    assert not problems, problems


def test_registration_spaces_and_time_limit():
    assert ENV_ID in REGISTERED_IDS and ENV_ID in gym.registry
    env = make()
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS == 2000
    gym_walker = gym.make("BipedalWalker-v3")
    # The default body has Gymnasium's spaces exactly, so agents built for BipedalWalker-v3 fit.
    assert env.observation_space == gym_walker.observation_space
    assert env.action_space == gym_walker.action_space
    short, quadru = make(body="short"), make(body="quadrupedal")
    assert short.observation_space.shape == (24,) and short.action_space.shape == (4,)
    assert quadru.observation_space.shape == (34,) and quadru.action_space.shape == (8,)
    for e in (env, gym_walker, short, quadru):
        e.close()


def test_default_body_moves_as_gymnasiums_walker(monkeypatch):
    """On a flat level the default walker is Gymnasium's, step for step, while it is on the start pad
    (Gymnasium's rough ground begins further on). The initial random push is switched off in both, as
    the two envs draw it at different points of their random streams."""
    import gymnasium.envs.box2d.bipedal_walker as gym_bw

    from envs import bipedal

    monkeypatch.setattr(gym_bw, "INITIAL_RANDOM", 0)
    monkeypatch.setattr(bipedal, "INITIAL_RANDOM", 0)
    ours, theirs = ParametricBipedalWalker(), gym_bw.BipedalWalker()
    obs_ours, _ = ours.reset(seed=0, options={"level": [0.0, 6.0]})
    obs_theirs, _ = theirs.reset(seed=0)
    np.testing.assert_array_equal(obs_ours, obs_theirs)
    rng = np.random.default_rng(0)
    for _ in range(15):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs_ours, r_ours, *_ = ours.step(action)
        obs_theirs, r_theirs, *_ = theirs.step(action)
        np.testing.assert_allclose(obs_ours, obs_theirs, atol=1e-6)
        assert r_ours == pytest.approx(r_theirs, abs=1e-9)


def test_pickles_as_its_arguments():
    env = ParametricBipedalWalker(body="short", level_low=[0.0, 1.0], level_high=[2.0, 5.0])
    copy = pickle.loads(pickle.dumps(env))
    assert copy.body_name == "short" and copy.level_high.tolist() == [2.0, 5.0]
    assert copy.reset(seed=0)[1]["level"].shape == (2,)


def test_render_rgb_array():
    pytest.importorskip("pygame")
    env = make(render_mode="rgb_array")
    env.reset(seed=0, options={"level": [2.0, 1.0]})
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
    env.close()


# ---- levels ------------------------------------------------------------------------------------------


def test_level_at_reset_is_reported_and_shapes_the_stumps():
    env = make()
    level = np.array([2.0, 3.0])
    _, info = env.reset(seed=0, options={"level": level})
    np.testing.assert_array_equal(info["level"], level)
    assert info["level"].dtype == np.float64
    _, _, _, _, step_info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(step_info["level"], level)  # every step reports it too

    walker = env.unwrapped
    heights = walker.stump_heights
    assert len(heights) >= 10
    # Heights ~ N(2, 0.1) in terrain steps: their mean within 4 standard errors, their spread about 0.1.
    assert abs(heights.mean() - 2.0) < 4 * 0.1 / np.sqrt(len(heights))
    assert 0.03 < heights.std() < 0.2
    # The stumps are in the world: one terrain step wide, `spacing` metres apart, as high as drawn.
    lefts = np.array([poly[0][0] for poly in walker.obstacles])
    np.testing.assert_allclose(np.diff(lefts), TERRAIN_STEP + 3.0)
    tops = np.array([poly[2][1] for poly in walker.obstacles]) - TERRAIN_HEIGHT
    np.testing.assert_allclose(tops, heights * TERRAIN_STEP)
    assert terrain_top(env) == pytest.approx(TERRAIN_HEIGHT + heights.max() * TERRAIN_STEP)

    # Another level, another track: low stumps packed closely.
    _, info = env.reset(seed=0, options={"level": [0.5, 0.5]})
    np.testing.assert_array_equal(info["level"], [0.5, 0.5])
    assert abs(walker.stump_heights.mean() - 0.5) < 0.1
    assert len(walker.obstacles) > 3 * len(heights)
    assert terrain_top(env) < TERRAIN_HEIGHT + 1.0 * TERRAIN_STEP
    env.close()


def test_zero_height_level_is_flat():
    env = make()
    for spacing in (0.0, 6.0):
        env.reset(seed=1, options={"level": np.array([0.0, spacing])})
        assert env.unwrapped.obstacles == []
        assert terrain_top(env) == pytest.approx(TERRAIN_HEIGHT)
    env.close()


def test_without_level_samples_uniformly_in_the_box():
    env = make()
    levels = np.array([env.reset(seed=seed)[1]["level"] for seed in range(40)])
    assert levels.shape == (40, 2)
    assert (levels >= [0, 0]).all() and (levels <= [3, 6]).all()
    assert levels[:, 0].min() < 1.0 and levels[:, 0].max() > 2.0  # spread over the box
    assert levels[:, 1].min() < 2.0 and levels[:, 1].max() > 4.0
    assert env.reset(options={"level": None})[1]["level"].shape == (2,)
    # A narrower box from the spec is the default distribution too.
    narrow = BipedalSpec(level_low=[1.0, 2.0], level_high=[1.5, 2.0]).make()
    for seed in range(5):
        level = narrow.reset(seed=seed)[1]["level"]
        assert 1.0 <= level[0] <= 1.5 and level[1] == 2.0
    narrow.close()
    env.close()


def test_seeded_episodes_are_reproducible():
    env = make()
    for level in (None, [1.5, 2.0]):
        obs_a, rew_a, info_a = rollout(env, seed=7, steps=40, level=level)
        heights_a = env.unwrapped.stump_heights.copy()
        rollout(env, seed=99, steps=40, level=[3.0, 0.0])  # an episode in between leaves no trace
        obs_b, rew_b, info_b = rollout(env, seed=7, steps=40, level=level)
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(info_a["level"], info_b["level"])
        np.testing.assert_array_equal(heights_a, env.unwrapped.stump_heights)
        obs_c, _, _ = rollout(env, seed=8, steps=40, level=level)
        assert not np.array_equal(obs_a[: len(obs_c)], obs_c[: len(obs_a)])
    env.close()


def test_test_set_is_fixed_and_inside_the_box():
    spec = BipedalSpec()
    levels = spec.test_levels()
    assert levels.shape == (50, 2)
    np.testing.assert_array_equal(levels, BipedalSpec().test_levels(50))  # same in any run
    np.testing.assert_array_equal(spec.test_levels(10), levels[:10])
    low, high = spec.level_bounds()
    np.testing.assert_array_equal(low, [0.0, 0.0])
    np.testing.assert_array_equal(high, [3.0, 6.0])
    assert (levels >= low).all() and (levels <= high).all()
    assert len(np.unique(levels[:, 0])) == 50
    hexagons = BipedalSpec(track="hexagons", **HEXAGON_BOUNDS).test_levels()
    assert hexagons.shape == (50, 12) and (hexagons >= 0).all() and (hexagons <= 4).all()
    # One number stands for every parameter.
    shorthand = BipedalSpec(track="hexagons", level_low=[0.0], level_high=[4.0])
    np.testing.assert_array_equal(shorthand.test_levels(), hexagons)


def test_mastery():
    assert MASTERY_RETURN == 230
    assert percent_mastered([231.0, 230.0, -100.0, 300.0]) == 50.0


def test_a_flat_level_can_be_mastered():
    """Gymnasium's scripted walker crosses a flat track (on some seeds: it is fragile) within the time
    limit and scores above the mastery threshold: reward scale, finish line and episode length agree."""
    from gymnasium.envs.box2d.bipedal_walker import BipedalWalkerHeuristics

    env = make()
    best = -np.inf
    for seed in range(10):
        controller = BipedalWalkerHeuristics()
        controller.a = np.zeros(4)  # the class shares this array between instances
        obs, _ = env.reset(seed=seed, options={"level": [0.0, 6.0]})
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(controller.step_heuristic(obs))
            total, done = total + reward, terminated or truncated
        best = max(best, total)
        if best > MASTERY_RETURN:
            break
    env.close()
    assert MASTERY_RETURN < best < 350


@pytest.mark.parametrize("level, needle", [
    ([1.0, 2.0, 3.0], "must be 2 numbers [stump_height_mean, spacing], got shape (3,)"),
    ([1.0], "got shape (1,)"),
    ([[1.0, 2.0]], "got shape (1, 2)"),
    ([3.5, 2.0], "within low=[0.0, 0.0] high=[3.0, 6.0], got [3.5, 2.0]"),
    ([1.0, -0.1], "within low=[0.0, 0.0] high=[3.0, 6.0]"),
    ([np.nan, 1.0], "(finite)"),
    ("high", "must be 2 numbers"),
])
def test_bad_level_is_a_one_line_error(level, needle):
    env = make()
    with pytest.raises(ValueError) as err:
        env.reset(seed=0, options={"level": level})
    assert "\n" not in str(err.value)
    assert needle in str(err.value), str(err.value)
    env.close()


def test_level_a_float32_hair_outside_the_box_is_clipped():
    env = make()
    _, info = env.reset(seed=0, options={"level": np.array([3.0 + 1e-6, 0.0 - 1e-6], dtype=np.float32)})
    np.testing.assert_array_equal(info["level"], [3.0, 0.0])
    env.close()


def test_vector_env_reports_each_level():
    vec = gym.vector.SyncVectorEnv([lambda: make() for _ in range(2)], autoreset_mode=AutoresetMode.SAME_STEP)
    _, info = vec.reset(seed=0, options={"level": np.array([1.0, 4.0])})
    np.testing.assert_array_equal(info["level"], [[1.0, 4.0], [1.0, 4.0]])
    _, _, _, _, info = vec.step(vec.action_space.sample())
    assert info["level"].shape == (2, 2)
    vec.close()


# ---- bodies and the hexagon track --------------------------------------------------------------------


def test_bodies_walk_a_few_steps():
    heights = {}
    for body in BODIES:
        env = make(body=body)
        obs, _, info = rollout(env, seed=3, steps=30, level=[1.0, 3.0])
        assert obs.shape[1] == env.observation_space.shape[0] and np.isfinite(obs).all()
        np.testing.assert_array_equal(info["level"], [1.0, 3.0])
        heights[body] = env.unwrapped.hull.position[1]
        env.close()
    assert heights["short"] < heights["default"] < heights["quadrupedal"]


def test_hexagon_track():
    env = make(track="hexagons", **HEXAGON_BOUNDS)
    level = np.full(12, 2.0)
    _, info = env.reset(seed=0, options={"level": level})
    np.testing.assert_array_equal(info["level"], level)
    obstacles = env.unwrapped.obstacles
    assert len(obstacles) >= 5 and all(len(p) == 6 for p in obstacles)
    tall = terrain_top(env)
    env.reset(seed=0, options={"level": np.zeros(12)})
    assert terrain_top(env) < tall
    with pytest.raises(ValueError, match="must be 12 numbers"):
        env.reset(options={"level": [1.0, 2.0]})
    env.close()


# ---- the spec ----------------------------------------------------------------------------------------


def test_spec_is_registered_and_a_structured_config():
    spec = ENVS["bipedal"]
    assert isinstance(spec, BipedalSpec) and spec.name == "bipedal"
    assert OmegaConf.to_object(OmegaConf.structured(spec)) == spec
    spec.validate()
    assert spec.gym_id() == ENV_ID
    assert spec.describe() == "bipedal-stumps"
    assert BipedalSpec(body="short", track="hexagons").describe() == "bipedal-hexagons-short"
    assert spec.level_low == [0.0, 0.0] and spec.level_high == [3.0, 6.0]
    env = spec.make()
    assert env.spec.max_episode_steps == 2000
    env.close()


@pytest.mark.parametrize("spec, needles", [
    (BipedalSpec(body="tall"), ["unknown bipedal body 'tall'", "default, short, quadrupedal"]),
    (BipedalSpec(track="gaps"), ["unknown bipedal track 'gaps'", "stumps, hexagons"]),
    (BipedalSpec(level_low=[0.0], level_high=[3.0, 6.0]),
     ["2 level parameters", "[stump_height_mean, spacing]"]),
    (BipedalSpec(track="hexagons"), ["12 level parameters", "12 numbers each, or one for all", "[4.0]"]),
    (BipedalSpec(level_low=[2.0, 0.0], level_high=[1.0, 6.0]), ["0 <= level_low <= level_high"]),
    (BipedalSpec(level_low=[-1.0, 0.0]), ["0 <= level_low <= level_high"]),
])
def test_validate_is_one_line(spec, needles):
    with pytest.raises(ValueError) as err:
        spec.validate()
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    with pytest.raises(ValueError):  # the env refuses the same arguments
        ParametricBipedalWalker(**spec.make_kwargs())
