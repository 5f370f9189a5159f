"""Maze levels (``envs.maze``), named and generated mazes, and the ``mazes`` / ``heldout`` evaluation suites."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers openrl/Maze-v0)
from envs import ENVS
from envs import maze_gen as gen
from envs.maze import (
    EMPTY,
    ENCODING_LENGTH,
    LAVA,
    MAX_WALL_TOKENS,
    MAZE_SIZE,
    MOSS,
    TOKEN_LENGTH,
    WALL,
    MazeLevel,
    as_level,
    decode,
    encode,
    from_ascii,
    from_tokens,
    is_solvable,
    random_level,
    shortest_path_length,
    to_ascii,
    to_tokens,
)
from envs.maze_named import NAMED_MAZE_STEPS, NAMED_MAZES, PAPER_MAZES, named_maze_level
from envs.maze_spec import MazeSpec

CORRIDOR = """
>...G........
#############
.............
.............
.............
.............
.............
.............
.............
.............
.............
.............
.............
"""


def make(**kwargs) -> gym.Env:
    return gym.make("openrl/Maze-v0", **kwargs)


# ---- level API ------------------------------------------------------------------------------------------


def test_encode_decode_round_trip_random_and_named():
    rng = np.random.default_rng(0)
    for _ in range(50):
        level = random_level(rng)
        code = encode(level)
        assert code.dtype == np.int64 and code.shape == (ENCODING_LENGTH,)
        assert decode(code) == level
        assert from_ascii(to_ascii(level)) == level
        if level.num_walls <= MAX_WALL_TOKENS:
            assert from_tokens(to_tokens(level), agent_dir=level.agent_dir) == level
    for name, level in NAMED_MAZES.items():
        assert decode(encode(level)) == level, name
        assert from_ascii(to_ascii(level)) == level, name


def test_encoding_layout():
    level = from_ascii(CORRIDOR)
    code = encode(level)
    assert code[:MAZE_SIZE].tolist() == [0] * MAZE_SIZE  # row 0 (agent and goal cover their cells)
    assert code[MAZE_SIZE:2 * MAZE_SIZE].tolist() == [WALL] * MAZE_SIZE
    assert code[-5:].tolist() == [0, 0, 0, 4, 0]  # agent x, y, dir, goal x, y
    assert shortest_path_length(level) == 4 and is_solvable(level)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c[:-1], "entries"),
    (lambda c: np.concatenate([c, [0]]), "entries"),
    (lambda c: np.where(np.arange(c.size) == 20, 7, c), "code 7"),
    (lambda c: np.where(np.arange(c.size) == c.size - 5, 13, c), "outside"),
    (lambda c: np.where(np.arange(c.size) == c.size - 3, 4, c), "agent_dir"),
    (lambda c: np.where(np.arange(c.size) == c.size - 2, 0, c), "same cell"),
    (lambda c: np.where(np.arange(c.size) == 1, WALL, c), r"goal position \(1, 0\) is on a wall"),
    (lambda c: np.where(np.arange(c.size) == 0, LAVA, c), r"agent position \(0, 0\) is on a lava"),
    (lambda c: c.astype(np.float64) + 0.5, "integers"),
])
def test_malformed_levels_raise(mutate, message):
    code = encode(from_ascii(CORRIDOR.replace(">...G", ">G...")))
    with pytest.raises(ValueError, match=message):
        decode(mutate(code))


def test_moss_under_agent_or_goal_is_canonicalised_and_codes_survive():
    cells = np.zeros((MAZE_SIZE, MAZE_SIZE), dtype=np.int8)
    cells[0, :3] = MOSS
    cells[5, 5] = LAVA
    level = MazeLevel(cells, (0, 0), 1, (2, 0))
    assert level.cells[0, 0] == EMPTY and level.cells[0, 2] == EMPTY and level.cells[0, 1] == MOSS
    assert decode(encode(level)).cells[5, 5] == LAVA
    assert from_ascii(to_ascii(level)) == level


def test_tokens_form_and_errors():
    level = from_ascii(CORRIDOR)
    tokens = to_tokens(level)
    assert tokens.shape == (TOKEN_LENGTH,)
    assert tokens[:MAZE_SIZE].tolist() == list(range(14, 27))  # 1-based indices of row 1
    assert (tokens[MAZE_SIZE:MAX_WALL_TOKENS] == 0).all()
    assert tokens[-2:].tolist() == [5, 1]  # goal (4, 0), agent (0, 0)
    shuffled = tokens.copy()
    shuffled[:MAZE_SIZE] = shuffled[:MAZE_SIZE][::-1]
    with pytest.raises(ValueError, match="sorted"):
        from_tokens(shuffled)
    assert from_tokens(shuffled, strict=False) == level
    with pytest.raises(ValueError, match="at most 50 walls"):
        to_tokens(random_level(np.random.default_rng(0), num_walls=51))
    with pytest.raises(ValueError, match="walls only"):
        to_tokens(MazeLevel(np.full((MAZE_SIZE, MAZE_SIZE), LAVA) * (np.arange(MAZE_SIZE) == 6)[:, None],
                            (0, 0), 0, (1, 0)))


def test_ascii_errors():
    with pytest.raises(ValueError, match="unknown character 'x'"):
        from_ascii(CORRIDOR.replace("G...", "Gx.."))
    with pytest.raises(ValueError, match="13 lines of 13"):
        from_ascii(CORRIDOR.replace(">...G........", ">...G......."))
    with pytest.raises(ValueError, match="exactly one goal"):
        from_ascii(CORRIDOR.replace("G", "."))


def test_random_level_follows_dcd_dr():
    rng = np.random.default_rng(1)
    walls = [random_level(rng).num_walls for _ in range(400)]
    assert min(walls) >= 0 and max(walls) <= 59 and max(walls) >= 50
    assert random_level(np.random.default_rng(3), num_walls=0).num_walls == 0
    assert random_level(np.random.default_rng(3)) == random_level(np.random.default_rng(3))


# ---- named mazes ------------------------------------------------------------------------------------------


def test_named_mazes_solvable_and_load_in_env():
    assert tuple(NAMED_MAZES) == PAPER_MAZES
    for name in PAPER_MAZES:
        for k in range(2):
            level = named_maze_level(name, k)
            assert is_solvable(level), name
            env = make(size=level.size, max_steps=NAMED_MAZE_STEPS[name])
            obs, info = env.reset(seed=k, options={"level": level})
            assert env.observation_space.contains(obs)
            assert decode(info["level"]) == level
            assert tuple(env.unwrapped.agent_pos) == (level.agent_pos[0] + 1, level.agent_pos[1] + 1)
            env.close()
    assert NAMED_MAZE_STEPS["Maze"] == 450 and NAMED_MAZE_STEPS["PerfectMazeXL"] == 20402
    assert [named_maze_level("PerfectMazeXL", 0).size, named_maze_level("LargeCorridor", 3).size] == [99, 19]
    assert named_maze_level("LargeCorridor", 1).goal_pos != named_maze_level("LargeCorridor", 0).goal_pos
    assert [named_maze_level("Labyrinth", k).agent_dir for k in range(5)] == [0, 1, 2, 3, 0]


# ---- the env ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("obs", ["image", "flat", "full"])
def test_check_env(obs):
    from gymnasium.utils.env_checker import check_env

    env = make(obs=obs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning is recorded, none filtered: the checker has nothing to say
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []
    assert env.action_space == gym.spaces.Discrete(3)
    env.close()


def test_reset_plays_the_given_level_and_reports_it():
    env = make()
    level = from_ascii(CORRIDOR)
    obs, info = env.reset(seed=0, options={"level": encode(level)})
    grid = env.unwrapped.grid
    assert tuple(env.unwrapped.agent_pos) == (1, 1) and env.unwrapped.agent_dir == 0
    assert grid.get(5, 1).type == "goal"
    assert all(grid.get(x + 1, 2).type == "wall" for x in range(MAZE_SIZE))
    assert decode(info["level"]) == level and info["xy"].tolist() == [0.0, 0.0]
    assert obs.shape == (5, 5, 4) and (obs[..., 3] == 0).all()  # the direction plane
    _, _, _, _, info = env.step(1)
    assert decode(info["level"]) == level
    # A string level and a MazeLevel are accepted too; a malformed one is a ValueError.
    env.reset(options={"level": CORRIDOR})
    with pytest.raises(ValueError, match="entries"):
        env.reset(options={"level": np.zeros(10, dtype=np.int64)})
    with pytest.raises(ValueError, match="13x13"):
        env.reset(options={"level": named_maze_level("LargeCorridor")})
    env.close()


def test_reaching_the_goal_gives_minigrid_reward():
    env = make()
    env.reset(seed=0, options={"level": from_ascii(CORRIDOR)})
    rewards = [env.step(2)[1] for _ in range(3)]
    _, reward, terminated, truncated, _ = env.step(2)
    assert rewards == [0.0, 0.0, 0.0] and terminated and not truncated
    assert reward == pytest.approx(1 - 0.9 * 4 / 250)
    env.close()


def test_lava_ends_the_episode_with_zero_reward():
    env = make()
    env.reset(seed=0, options={"level": from_ascii(CORRIDOR.replace(">...G", ">.L.G"))})
    env.step(2)
    _, reward, terminated, _, _ = env.step(2)
    assert terminated and reward == 0.0
    env.close()


def test_timeout_truncates_with_zero_reward():
    env = make(max_steps=5)
    env.reset(seed=0, options={"level": from_ascii(CORRIDOR)})
    for _ in range(4):
        assert not env.step(0)[3]
    _, reward, terminated, truncated, _ = env.step(0)
    assert truncated and not terminated and reward == 0.0
    env.close()


def test_next_level_is_used_once_at_reset_and_default_is_seeded():
    env = make()
    level = from_ascii(CORRIDOR)
    env.unwrapped.next_level = encode(level)
    _, info = env.reset(seed=0)
    assert decode(info["level"]) == level and env.unwrapped.next_level is None
    _, first = env.reset(seed=7)
    _, again = env.reset(seed=7)
    assert np.array_equal(first["level"], again["level"]) and decode(first["level"]) != level
    env.close()


def test_vector_env_autoreset_plays_queued_levels():
    vec = gym.make_vec("openrl/Maze-v0", num_envs=2, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    level = from_ascii(CORRIDOR)
    _, info = vec.reset(seed=0, options={"level": encode(level)})
    assert (info["level"] == encode(level)).all()
    queued = from_ascii(CORRIDOR.replace(">...G", ">G..."))
    vec.set_attr("next_level", [encode(queued), encode(queued)])
    for _ in range(4):
        _, _, terminated, _, info = vec.step(np.array([2, 2]))
    assert terminated.all()
    assert decode(info["final_info"]["level"][0]) == level
    assert decode(info["level"][0]) == queued and decode(info["level"][1]) == queued
    vec.close()


def test_spec_registered_and_test_levels():
    spec = ENVS["maze"]
    assert isinstance(spec, MazeSpec) and spec.level_bounds() is None and spec.score_range() == (0.0, 1.0)
    spec.validate()
    env = spec.make()
    assert env.unwrapped.max_steps == 250 and env.unwrapped.agent_view_size == 5
    env.close()
    with pytest.raises(ValueError, match="obs"):
        MazeSpec(obs="pixels").validate()
    assert MazeSpec(size=19).test_levels() is None
    assert as_level(spec.test_levels(3)[0]).size == MAZE_SIZE


# ---- generated levels -------------------------------------------------------------------------------------


def test_grounding_levels_deterministic_disjoint_solvable():
    train = gen.grounding_levels("train", n_train=24, seed=5)
    heldout = gen.grounding_levels("heldout", n_train=24, n_heldout=24, seed=5)
    assert train.shape == heldout.shape == (24, ENCODING_LENGTH)
    gen._train_set.cache_clear()
    gen._heldout_set.cache_clear()
    assert np.array_equal(train, gen.grounding_levels("train", n_train=24, seed=5))
    assert np.array_equal(heldout[:10], gen.grounding_levels("heldout", n_train=24, n_heldout=10, seed=5))
    rows = {row.tobytes() for row in train}
    assert len(rows) == 24 and not rows & {row.tobytes() for row in heldout}
    assert not np.array_equal(train, gen.grounding_levels("train", n_train=24, seed=6))
    levels = [decode(row) for row in np.concatenate([train, heldout])]
    assert all(is_solvable(lv) for lv in levels)
    assert set(gen.grounding_structures("train", n_train=24, seed=5)) == set(gen.STRUCTURES)
    assert any((lv.cells == LAVA).any() for lv in levels) and any((lv.cells == MOSS).any() for lv in levels)


def test_cave_lava_is_far_and_moss_near_the_goal():
    rng = np.random.default_rng(0)
    far, near = [], []
    for _ in range(20):
        level = gen.structured_level(rng, "maze")
        dist = np.abs(np.indices(level.cells.shape) - np.array(level.goal_pos[::-1])[:, None, None]).sum(0)
        far.append(dist[level.cells == LAVA].mean() - dist[level.cells == WALL].mean())
        near.append(dist[level.cells == MOSS].mean() - dist[level.cells == EMPTY].mean())
    assert np.mean(far) > 0 and np.mean(near) < 0


def test_perfect_maze_is_perfect():
    cells = gen.perfect_maze_cells(np.random.default_rng(0), 19)
    free = cells == EMPTY
    assert (gen.bfs_distances(free, (0, 0)) >= 0).sum() == free.sum()  # connected
    edges = sum(int(free[y, x] and free[y, x + 1]) for y in range(19) for x in range(18))
    edges += sum(int(free[y, x] and free[y + 1, x]) for y in range(18) for x in range(19))
    assert edges == free.sum() - 1  # a tree: exactly one path between two cells


def test_save_and_load_levels(tmp_path):
    levels = gen.grounding_levels("train", n_train=8, seed=1)
    path = gen.save_levels(tmp_path / "g.npz", levels, {"seed": 1})
    assert np.array_equal(gen.load_levels(path), levels) and gen.load_metadata(path)["seed"] == 1
    with pytest.raises(ValueError, match="does not exist"):
        gen.load_levels(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        gen.load_levels(tmp_path / "bad.npz")
    broken = levels.copy()
    broken[3, -1] = 99
    np.savez(tmp_path / "broken.npz", levels=broken, metadata=np.array(json.dumps({})))
    with pytest.raises(ValueError, match="level 3 is malformed"):
        gen.load_levels(tmp_path / "broken.npz")
    assert gen.main([f"out={tmp_path / 'cli.npz'}", "split=train", "n=4", "seed=1"]) == 0
    assert np.array_equal(gen.load_levels(tmp_path / "cli.npz"), gen.grounding_levels("train", n_train=4, seed=1))
    assert gen.main(["split=train"]) == 2


# ---- evaluation suites ------------------------------------------------------------------------------------

DIRS = [(1, 0), (0, 1), (-1, 0), (0, -1)]


class PlannerAgent:
    """Reads the whole grid (obs=full) and follows a shortest path: solves every solvable maze."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        actions = []
        for grid in obs:
            objects = grid[:, :, 0].T  # [y, x]
            ay, ax = np.argwhere(objects == 10)[0]
            gy, gx = np.argwhere(objects == 8)[0]
            direction = int(grid[ax, ay, 2])
            dist = gen.bfs_distances((objects != 2) & (objects != 9), (int(gx), int(gy)))

            def closer(d, ax=ax, ay=ay, dist=dist):
                return 0 <= dist[ay + DIRS[d][1], ax + DIRS[d][0]] < dist[ay, ax]

            actions.append(2 if closer(direction) else 1 if closer((direction + 1) % 4) else 0)
        return np.array(actions)


class SpinnerAgent:
    """Turns left forever: never solves."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.zeros(len(obs), dtype=np.int64)


def test_mazes_suite_solve_rates(tmp_path, monkeypatch):
    from runners.evaluation import EvalContext
    from runners.maze_eval import heldout_suite, mazes_suite

    ctx = EvalContext(agent=PlannerAgent(), env=MazeSpec(name="maze", obs="full"), episodes=2, seed=0,
                      deterministic=True, out_dir=tmp_path, step=3)
    result = mazes_suite(ctx)
    played = [n for n in PAPER_MAZES if f"solve_rate/{n}" in result["scalars"]]
    assert played == [n for n in PAPER_MAZES if NAMED_MAZES[n].size == MAZE_SIZE]
    assert result["scalars"]["solve_rate/mean"] == 1.0 and "skipped" in result["mazes"]["PerfectMazeXL"]
    assert {p.name for p in tmp_path.iterdir()} == {f"mazes_step3.{ext}" for ext in ("md", "csv", "json", "png")}
    monkeypatch.setattr(MazeSpec, "TEST_SET_SIZE", 12)
    result = heldout_suite(ctx)
    assert result["scalars"]["solve_rate"] == 1.0 and len(result["returns"]) == 12
    assert set(result["structures"]) == {*gen.STRUCTURES, "all"}

    ctx.agent, ctx.out_dir, ctx.env = SpinnerAgent(), None, MazeSpec(name="maze", obs="image")
    result = mazes_suite(ctx, names=["SixteenRooms"])
    assert result["scalars"]["solve_rate/mean"] == 0.0 and result["mazes"]["SixteenRooms"]["length_mean"] == 450
    assert heldout_suite(ctx)["scalars"]["solve_rate"] == 0.0
