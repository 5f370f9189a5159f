"""The held-out named mazes UED papers evaluate zero-shot transfer on (PAIRED, Robust PLR, ACCEL, DRED, CLUTR).

The layouts are dcd's (facebookresearch/dcd, ``envs/multigrid/maze.py`` and ``mst_maze.py``), the mazes of
minimax's and jaxued's evaluation lists, redrawn here in the ASCII form of ``envs.maze.from_ascii``
(``#`` wall, ``.`` empty, ``G`` goal, ``>`` agent; interior only, the outer wall is implied; dcd's
1-based grid positions are one less here):

| name | interior | agent -> goal | notes |
|---|---|---|---|
| SixteenRooms, SixteenRoomsFewerDoors | 13x13 | (1, 1) -> (11, 11) | 4x4 rooms; fewer doorways in the second |
| Labyrinth | 13x13 | (0, 12) -> (6, 6) | a spiral into the centre |
| Labyrinth2 | 13x13 | (0, 0) -> (6, 6) | the spiral the other way round |
| Maze | 13x13 | (6, 0) -> (6, 12) | dcd's default ``MultiGrid-Maze-v0`` |
| Maze2 | 13x13 | (0, 6) -> (12, 4) | dcd's ``HorizontalMazeEnv`` (``MultiGrid-Maze2-v0``) |
| LargeCorridor | 19x19 | (0, 9) -> one of 16 dead ends | dcd draws the goal per episode: column in {2, 4, ..., 16}, row 8 or 10 |
| PerfectMazeMedium, -Large, -XL | 19x19, 49x49, 99x99 | two distinct corners | a fresh Kruskal perfect maze per episode in dcd (grids 21, 51, 101) |

Per-episode variation follows dcd, deterministically: dcd draws the agent's start direction at random in
every maze (``place_agent_at_pos(rand_dir=True)``), LargeCorridor's goal among its 16 dead ends, and a new
PerfectMaze (and its corners) at every reset. Here episode ``k`` of a maze plays ``named_maze_level(name, k)``:
direction ``k % 4``; LargeCorridor's ``k % 16``-th goal; PerfectMaze ``k`` built by
``envs.maze_gen.perfect_maze_cells`` from the seed ``(PERFECT_MAZE_SEED, size, k)``. So every evaluation
sees the same levels, and the four directions equally often. ``NAMED_MAZES`` holds each maze's episode-0
level (a ``MazeLevel``).

Episode limits (``NAMED_MAZE_STEPS``) are dcd's for these envs, ``2 * (size + 2) ** 2``: 450 for the 13x13
mazes, 882 for LargeCorridor and PerfectMazeMedium, 5202 for Large and 20402 for XL; the training mazes use
250. The agent's 5x5 view does not depend on the maze size, so an agent trained on 13x13 levels with
``obs=image`` or ``obs=flat`` plays every maze; ``obs=full`` agents only the 13x13 ones.
"""

from __future__ import annotations

import functools

import numpy as np

from envs.maze import MazeLevel, from_ascii
from envs.maze_gen import perfect_maze_cells

PERFECT_MAZE_SEED = 0
PERFECT_MAZE_SIZES = {"PerfectMazeMedium": 19, "PerfectMazeLarge": 49, "PerfectMazeXL": 99}

# 13x13 mazes of dcd, agent facing right (direction 0) in episode 0.
ASCII_MAZES: dict[str, str] = {
    "SixteenRooms": """
    ...#..#..#...
    .>.......#...
    ...#..#......
    #.###.##.###.
    ...#.........
    ......#..#...
    ##.#.##.###.#
    ...#.....#...
    ...#..#......
    .####.##.#.##
    ...#..#..#...
    ......#....G.
    ...#.....#...
""",
    "SixteenRoomsFewerDoors": """
    ...#.....#...
    .>....#..#...
    ...#..#..#...
    ####.##.###.#
    ...#..#......
    ......#..#...
    #.#####.#####
    ...#..#..#...
    ...#.........
    ##.##.##.####
    ...#..#..#...
    ......#....G.
    ...#..#..#...
""",
    "Labyrinth": """
    .............
    .###########.
    .#.........#.
    .#.#######.#.
    .#.#.....#.#.
    .#.#.###.#.#.
    .#.#.#G#.#.#.
    .#.#.#.#.#.#.
    .#...#...#.#.
    .#########.#.
    .....#.....#.
    ####.#.#####.
    >....#.......
""",
    "Labyrinth2": """
    >#...........
    .#.#########.
    .#.#.......#.
    .#.#.#####.#.
    .#.#.#...#.#.
    ...#.#.#.#.#.
    ####.#G#.#.#.
    ...#.###.#.#.
    .#.#.....#.#.
    .#.#######.#.
    .#.........#.
    .###########.
    .............
""",
    "Maze": """
    .....#>...#..
    .###.####.##.
    .#...........
    .########.###
    ........#....
    ######.#####.
    ....#..#.....
    .##...##.####
    ..#.#..#...#.
    #.#.##.###.#.
    #.#..#...#...
    #.##.###.###.
    ...#..G#.#...
""",
    "Maze2": """
    ...#.#....#..
    .#.#.####...#
    .#........#..
    .########.###
    ...#..#.#.#.G
    ##.#.##.#.#..
    >#.#....#.##.
    .#.##.###..#.
    .#..#..###.#.
    .##.##.#.#.#.
    .#...#.#.#.#.
    .#.#.#.#.#.#.
    ...#...#.....
""",
}

# dcd's LargeCorridor: a 19x19 comb of dead ends on both sides of a long wall; the goal sits at the end of one
# of them (``LARGE_CORRIDOR_GOALS``), here in episode 0 the first.
LARGE_CORRIDOR = """
...................
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#G#.#.#.#.#.#.#.#.
>#################.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
.#.#.#.#.#.#.#.#.#.
...................
"""
LARGE_CORRIDOR_GOALS = tuple((x, y) for y in (8, 10) for x in range(2, 17, 2))

# The papers' evaluation list, in the order results are reported.
PAPER_MAZES = ("SixteenRooms", "SixteenRoomsFewerDoors", "Labyrinth", "Labyrinth2", "Maze", "Maze2", "LargeCorridor",
               "PerfectMazeMedium", "PerfectMazeLarge", "PerfectMazeXL")


def _with(level: MazeLevel, agent_dir: int | None = None, goal: tuple[int, int] | None = None) -> MazeLevel:
    return MazeLevel(level.cells, level.agent_pos, level.agent_dir if agent_dir is None else agent_dir,
                     level.goal_pos if goal is None else goal)


@functools.cache
def _base(name: str) -> MazeLevel:
    if name in ASCII_MAZES:
        return from_ascii(ASCII_MAZES[name])
    if name == "LargeCorridor":
        return from_ascii(LARGE_CORRIDOR)
    raise KeyError(name)


@functools.lru_cache(maxsize=64)
def _perfect_maze(name: str, k: int) -> MazeLevel:
    size = PERFECT_MAZE_SIZES[name]
    rng = np.random.default_rng([PERFECT_MAZE_SEED, size, k])
    cells = perfect_maze_cells(rng, size)
    corners = [(0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)]
    agent, goal = (corners[int(i)] for i in rng.choice(4, size=2, replace=False))
    return MazeLevel(cells, agent, k % 4, goal)


def named_maze_level(name: str, episode: int = 0) -> MazeLevel:
    """The level episode ``episode`` of the named maze plays (see the module docstring)."""
    if name not in PAPER_MAZES:
        raise ValueError(f"unknown named maze {name!r}; choose one of: {', '.join(PAPER_MAZES)}")
    if episode < 0:
        raise ValueError(f"episode must be >= 0, got {episode}")
    if name in PERFECT_MAZE_SIZES:
        return _perfect_maze(name, episode)
    goal = LARGE_CORRIDOR_GOALS[episode % len(LARGE_CORRIDOR_GOALS)] if name == "LargeCorridor" else None
    return _with(_base(name), agent_dir=episode % 4, goal=goal)


def named_maze_steps(name: str) -> int:
    """dcd's episode limit for the maze: ``2 * (size + 2) ** 2``."""
    return 2 * (named_maze_level(name).size + 2) ** 2


NAMED_MAZES: dict[str, MazeLevel] = {name: named_maze_level(name) for name in PAPER_MAZES}
NAMED_MAZE_STEPS: dict[str, int] = {name: named_maze_steps(name) for name in PAPER_MAZES}
