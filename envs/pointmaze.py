"""A continuous 2-D point maze in pure Python/NumPy: the suite's fast testbed for skills and exploration.

Geometry. A layout is an ASCII grid of unit cells (``#`` wall, ``.`` free, ``S`` start cell). The cell in
column ``c`` of the ``r``-th text line (counting from the top) covers ``[c, c+1] x [H-1-r, H-r]``, so
x grows to the right and y upwards and a plot of the maze looks like its text. Every layout is closed by
walls. The free cell of a point ``(x, y)`` is ``(floor(x), floor(y))``: coverage is counted in these
1 x 1 cells, and :meth:`PointMazeEnv.free_cells` lists them.

Dynamics. The action ``a`` in [-1, 1]^2 (clipped) is a displacement of ``step_size * a`` (default 0.2,
so at most 5 steps to cross a cell along an axis). The point has no mass or radius. Its motion is the
segment from the current position along the displacement, cut at the first wall face it meets; what is
left of the displacement then slides along that face (its normal component removed), again cut at the
next face. The point therefore never enters a wall cell and never crosses a wall, not even through the
meeting corner of two diagonal walls.

Observation: ``(x, y)`` float32. ``info["xy"]``: the same position, float64.

Task. Without a goal the reward is 0 (unsupervised pre-training). A goal comes from the ``goal`` argument
or, per episode, from ``reset(options={"goal": (x, y)})`` (``{"goal": None}`` removes it for that
episode). ``info["success"]`` is True while the point is within ``goal_radius`` of the goal (always False
without one). ``goal_reward="sparse"`` pays 1.0 on success steps, ``"dense"`` pays minus the Euclidean
distance to the goal; ``terminate_on_success`` ends the episode at the first success.

Start. The centre of the ``S`` cell plus uniform noise in [-0.1, 0.1]^2, or the centre of a uniformly
drawn free cell (``random_start``), or ``reset(options={"start": (x, y)})``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import EnvSpec, GoalTask

LAYOUTS: dict[str, str] = {
    "open": """
#######
#.....#
#.....#
#..S..#
#.....#
#.....#
#######
""",
    # D4RL's U-maze: start at one end of the U, the other end is the usual goal.
    "u": """
#####
#S..#
###.#
#...#
#####
""",
    # Sutton, Precup and Singh's four rooms.
    "four_rooms": """
#############
#S....#.....#
#.....#.....#
#...........#
#.....#.....#
#.....#.....#
##.####.....#
#.....###.###
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#############
""",
    # D4RL's medium and large mazes.
    "medium": """
########
#S.##..#
#..#...#
##...###
#..#...#
#.#..#.#
#...#..#
########
""",
    "large": """
############
#S...#.....#
#.##.#.#.#.#
#......#...#
#.####.###.#
#..#.#.....#
##.#.#.#.###
#..#...#...#
############
""",
}

GOAL_REWARDS = ("sparse", "dense")
START_NOISE = 0.1
_EPS = 1e-9  # how far inside its cell a point stopped at a wall face is kept
_CELL_PX = 16  # rendering: pixels per cell


def parse_layout(text: str) -> tuple[np.ndarray, tuple[int, int]]:
    """``(walls, start)``: ``walls[ix, iy]`` is True for wall cells; ``start`` is the ``S`` cell."""
    rows = text.strip("\n").splitlines()
    height, width = len(rows), len(rows[0])
    walls = np.zeros((width, height), dtype=bool)
    start = None
    for r, line in enumerate(rows):
        for c, ch in enumerate(line):
            iy = height - 1 - r
            walls[c, iy] = ch == "#"
            if ch == "S":
                start = (c, iy)
    border = np.concatenate([walls[0], walls[-1], walls[:, 0], walls[:, -1]])
    if start is None or not border.all():
        raise ValueError("a maze layout needs an 'S' cell and walls all around")
    return walls, start


class PointMazeEnv(gym.Env):
    """Point mass in a maze of unit cells; see the module docstring for geometry, dynamics and task."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, layout: str = "open", step_size: float = 0.2, goal: list[float] | None = None,
                 goal_radius: float = 0.5, goal_reward: str = "sparse", terminate_on_success: bool = False,
                 random_start: bool = False, render_mode: str | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown maze layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
        if goal_reward not in GOAL_REWARDS:
            raise ValueError(f"unknown goal_reward {goal_reward!r}; choose one of: {', '.join(GOAL_REWARDS)}")
        if not 0.0 < step_size <= 1.0:
            # One cell per axis at most: the collision code relies on it.
            raise ValueError(f"step_size must be in (0, 1], got {step_size}")
        walls, self._start_cell = parse_layout(LAYOUTS[layout])
        self.layout = layout
        self.width, self.height = walls.shape
        self._walls_np = walls
        self._walls = walls.tolist()  # nested lists: the fastest lookup from Python floats
        self.step_size, self.goal_radius = float(step_size), float(goal_radius)
        self.goal_reward, self.terminate_on_success = goal_reward, terminate_on_success
        self.random_start, self.render_mode = random_start, render_mode
        self._default_goal = None if goal is None else self._checked_point(goal, "goal")
        self.goal: tuple[float, float] | None = self._default_goal
        self._x = self._y = 0.0

        self.observation_space = gym.spaces.Box(
            low=np.zeros(2, dtype=np.float32), high=np.array([self.width, self.height], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    # ---- maze queries -------------------------------------------------------------------------------

    def free_cells(self) -> np.ndarray:
        """Integer ``(ix, iy)`` of every free cell, shape (n, 2): the coverage grid and a goal set
        (cell centres are ``free_cells() + 0.5``)."""
        return np.argwhere(~self._walls_np)

    def is_free(self, x: float, y: float) -> bool:
        """Whether the point ``(x, y)`` lies in a free cell."""
        ix, iy = math.floor(x), math.floor(y)
        return 0 <= ix < self.width and 0 <= iy < self.height and not self._walls[ix][iy]

    def _checked_point(self, point, what: str) -> tuple[float, float]:
        if len(point) != 2:
            raise ValueError(f"{what} must be (x, y), got {list(point)}")
        x, y = (float(v) for v in point)
        if not self.is_free(x, y):
            raise ValueError(f"{what} {(x, y)} is not in a free cell of maze {self.layout!r}")
        return x, y

    # ---- dynamics -----------------------------------------------------------------------------------

    def _first_wall(self, x: float, y: float, dx: float, dy: float):
        """First wall the segment (x, y) -> (x+dx, y+dy) runs into, as ``(t, axis, cell)``: the fraction
        of the segment travelled, the axis of the blocking face, and the last free cell; None if none.

        |dx|, |dy| <= 1, so the segment crosses at most one cell boundary per axis; crossings are visited
        in order of ``t`` (x first on a tie, so the point never slips between two diagonal walls)."""
        ix, iy = math.floor(x), math.floor(y)
        crossings = []
        if dx > 0 and x + dx >= ix + 1:
            crossings.append(((ix + 1 - x) / dx, 0, 1))
        elif dx < 0 and x + dx < ix:
            crossings.append(((ix - x) / dx, 0, -1))
        if dy > 0 and y + dy >= iy + 1:
            crossings.append(((iy + 1 - y) / dy, 1, 1))
        elif dy < 0 and y + dy < iy:
            crossings.append(((iy - y) / dy, 1, -1))
        if len(crossings) == 2 and crossings[1][0] < crossings[0][0]:
            crossings.reverse()
        for t, axis, direction in crossings:
            nx, ny = (ix + direction, iy) if axis == 0 else (ix, iy + direction)
            if self._walls[nx][ny]:
                return t, axis, (ix, iy)
            ix, iy = nx, ny
        return None

    def _move(self, x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
        # At most two faces can block (one per axis), so three rounds always finish the motion.
        for _ in range(3):
            hit = self._first_wall(x, y, dx, dy)
            if hit is None:
                return x + dx, y + dy
            t, axis, (ix, iy) = hit
            # Stop at the face, kept inside the last free cell (also guards against rounding).
            x = min(max(x + dx * t, ix), ix + 1 - _EPS)
            y = min(max(y + dy * t, iy), iy + 1 - _EPS)
            dx, dy = (0.0, dy * (1 - t)) if axis == 0 else (dx * (1 - t), 0.0)
        return x, y

    # ---- Gymnasium API ------------------------------------------------------------------------------

    def _obs_info(self) -> tuple[np.ndarray, dict[str, Any]]:
        success = False
        if self.goal is not None:
            success = math.hypot(self._x - self.goal[0], self._y - self.goal[1]) <= self.goal_radius
        obs = np.array((self._x, self._y), dtype=np.float32)
        return obs, {"xy": np.array((self._x, self._y)), "success": success}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.goal = self._default_goal
        if "goal" in options:
            self.goal = None if options["goal"] is None else self._checked_point(options["goal"], "goal")
        if "start" in options:
            self._x, self._y = self._checked_point(options["start"], "start")
        elif self.random_start:
            cells = self.free_cells()
            ix, iy = cells[self.np_random.integers(len(cells))]
            self._x, self._y = ix + 0.5, iy + 0.5
        else:
            nx, ny = self.np_random.uniform(-START_NOISE, START_NOISE, size=2)
            self._x, self._y = self._start_cell[0] + 0.5 + nx, self._start_cell[1] + 0.5 + ny
        return self._obs_info()

    def step(self, action):
        ax, ay = (min(max(float(a), -1.0), 1.0) for a in action)
        self._x, self._y = self._move(self._x, self._y, self.step_size * ax, self.step_size * ay)
        obs, info = self._obs_info()
        reward = 0.0
        if self.goal is not None:
            if self.goal_reward == "dense":
                reward = -math.hypot(self._x - self.goal[0], self._y - self.goal[1])
            else:
                reward = float(info["success"])
        terminated = bool(info["success"] and self.terminate_on_success)
        return obs, reward, terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        # Image rows go top-down while y goes up: flip the (x, y) wall grid into (row, col).
        cells = np.where(self._walls_np.T[::-1, :, None], 60, 235).astype(np.uint8)
        image = np.repeat(np.repeat(np.repeat(cells, _CELL_PX, 0), _CELL_PX, 1), 3, 2)

        def dot(x: float, y: float, colour: tuple[int, int, int], half: int) -> None:
            col, row = int(x * _CELL_PX), int((self.height - y) * _CELL_PX)
            image[max(row - half, 0):row + half + 1, max(col - half, 0):col + half + 1] = colour

        if self.goal is not None:
            dot(*self.goal, (40, 170, 60), 4)
        dot(self._x, self._y, (200, 30, 30), 3)
        return image


# Goal reaching: up to MAZE_GOALS free-cell centres, evenly spaced through the free cells ordered by (x, y).
MAZE_GOALS = 12
# Reward prompting: goals near the maze's corners, one per diagonal direction, CORNER_OFFSET (per axis)
# from the corner cell's centre towards the corner. A linear reward in a representation of position is
# maximised by pushing into a corner, so these are tasks a linear prompt can express.
MAZE_CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))
CORNER_OFFSET = 0.4


def _goal_as_observation(obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The point maze's observation is its x-y: the observation at a goal is the goal itself."""
    return goal.astype(np.float32)


@dataclass
class PointMazeSpec(EnvSpec):
    """2-D point maze (``envs.pointmaze``): ``layout`` one of open, u, four_rooms, medium, large.

    ``goal`` ([x, y]) turns on the goal task (see the module docstring); evaluation code can instead pass
    ``reset(options={"goal": ...})`` per episode. Episodes are truncated after ``max_episode_steps``
    (200 when unset).
    """

    layout: str = "open"
    step_size: float = 0.2
    goal: list[float] | None = None
    goal_radius: float = 0.5
    goal_reward: str = "sparse"
    terminate_on_success: bool = False
    random_start: bool = False

    step_info_keys: ClassVar[tuple[str, ...]] = ("xy", "success")

    def validate(self) -> None:
        # The env checks its own arguments and is cheap to build, so one set of checks serves both.
        PointMazeEnv(**self.make_kwargs()).close()

    def gym_id(self) -> str:
        return "openrl/PointMaze-v0"

    def make_kwargs(self) -> dict[str, Any]:
        return {"layout": self.layout, "step_size": self.step_size,
                "goal": None if self.goal is None else list(self.goal), "goal_radius": self.goal_radius,
                "goal_reward": self.goal_reward, "terminate_on_success": self.terminate_on_success,
                "random_start": self.random_start}

    def goal_cells(self) -> list[tuple[int, int]]:
        """The layout's free cells (x, y) in (x, y) order, the start cell left out."""
        walls, start = parse_layout(LAYOUTS[self.layout])
        return [tuple(int(v) for v in c) for c in np.argwhere(~walls) if tuple(c) != start]

    def goal_task(self) -> GoalTask:
        """Up to ``MAZE_GOALS`` free-cell centres, evenly spaced (``np.linspace``) through the free cells, the
        start cell left out; success within ``goal_radius``; each goal is also the episode's own task
        (``reset(options={"goal": g})``)."""
        cells = self.goal_cells()
        index = np.unique(np.linspace(0, len(cells) - 1, min(MAZE_GOALS, len(cells))).round().astype(int))
        goals = np.array([cells[i] for i in index], dtype=np.float64) + 0.5
        return GoalTask(goals, self.goal_radius, _goal_as_observation, [{"goal": g.tolist()} for g in goals])

    def corner_goals(self) -> np.ndarray:
        """For each diagonal direction d of ``MAZE_CORNERS``, the free cell extreme along d (its two neighbours
        towards d are walls, so it is a corner of the maze) and the goal near that corner: the cell centre
        + ``CORNER_OFFSET`` * d. Deduplicated, in the order of ``MAZE_CORNERS``."""
        cells = np.array(self.goal_cells())
        goals: list[tuple[float, float]] = []
        for d in MAZE_CORNERS:
            cell = cells[int(np.argmax(cells @ np.array(d)))]
            goal = tuple(float(v) for v in np.round(cell + 0.5 + CORNER_OFFSET * np.array(d), 6))
            if goal not in goals:
                goals.append(goal)
        return np.array(goals)

    def prompt_tasks(self) -> dict[str, EnvSpec]:
        """Reaching each corner goal (``corner_goals``) with the dense goal reward (minus the distance per
        step, so every labelled sample carries signal), named ``goal_<x>_<y>``."""
        return {f"goal_{g[0]:g}_{g[1]:g}": dataclasses.replace(self, goal=g.tolist(), goal_reward="dense")
                for g in self.corner_goals()}

    def goal_rewards(self, next_xy: np.ndarray) -> np.ndarray:
        """This spec's goal reward (``goal_reward``, ``goal_radius``) at the positions reached, shape [N]."""
        distance = np.linalg.norm(np.asarray(next_xy, np.float64)[:, :2] - np.asarray(self.goal, np.float64), axis=1)
        if self.goal_reward == "dense":
            return (-distance).astype(np.float32)
        return (distance <= self.goal_radius).astype(np.float32)

    def relabel_rewards(self, dataset: Any) -> np.ndarray | None:
        """With a goal: its reward recomputed exactly from each next position (``infos["next_xy"]``, else the
        observation, which is the position)."""
        if self.goal is None:
            return super().relabel_rewards(dataset)
        return self.goal_rewards(dataset.infos.get("next_xy", dataset.next_observations))

    def labelling_spec(self) -> EnvSpec:
        """Random starts in free cells, so random-policy samples cover the maze."""
        return dataclasses.replace(self, random_start=True)

    def wall_map(self) -> np.ndarray:
        return parse_layout(LAYOUTS[self.layout])[0]

    def describe(self) -> str:
        return f"pointmaze-{self.layout}"
