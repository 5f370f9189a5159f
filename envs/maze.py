"""Level-parameterised MiniGrid mazes for unsupervised environment design (PLR, DRED, CLUTR, DR).

A *level* is a :class:`MazeLevel`: a square grid of cell codes (``EMPTY``, ``WALL``, ``LAVA``, ``MOSS``),
the agent's start cell and direction and the goal cell. Coordinates ``(x, y)`` are 0-based *interior*
coordinates (x = column, y = row, rows counting downwards as in MiniGrid); the outer wall border is not
part of the level. The default size is ``MAZE_SIZE`` = 13, the 13x13 interior (15x15 with the border)
of the mazes of dcd, minimax and jaxued. Larger sizes exist for the PerfectMaze transfer mazes.

Forms of a level (the suite's Levels convention, ``envs.base``: teachers pass integer vectors):

* ``encode(level)``: int64 vector of length ``size * size + 5`` (``ENCODING_LENGTH`` = 174 for 13x13): the
  cell codes row-major (``cells[y, x]``), then ``agent_x, agent_y, agent_dir, goal_x, goal_y``.
  ``decode(vector)`` is its inverse and infers the size from the length.
* ``to_tokens(level)`` / ``from_tokens(tokens)``: CLUTR's sequence form (13x13 only): the sorted 1-based
  cell indices ``y * 13 + x + 1`` of the walls, padded with 0 to ``MAX_WALL_TOKENS`` = 50, then the goal's
  index, then the agent's (52 tokens). Tokens hold walls only (no lava or moss) and no agent direction:
  ``from_tokens`` gives the agent ``agent_dir`` (0, facing right, unless asked otherwise; dcd's adversarial
  env, which CLUTR builds on, draws the direction at random, so a teacher that wants that passes a drawn one).
* ``to_ascii(level)`` / ``from_ascii(text)``: one line per row, ``#`` wall, ``.`` empty, ``L`` lava, ``m`` moss,
  ``G`` goal, ``>`` ``v`` ``<`` ``^`` the agent facing right, down, left, up (MiniGrid's directions 0..3).

Every constructor validates: codes in range, positions inside the grid, agent and goal on passable
non-lava cells and distinct; a malformed level is one ``ValueError`` naming what is wrong. The goal and the
agent cover their cell: the code stored beneath them is ``EMPTY`` (moss beneath is dropped, so one level has
one encoding), a wall or lava beneath is an error. Validity does not require a path to the goal:
domain-randomised levels may be unsolvable, as in the papers; ``is_solvable`` / ``shortest_path_length``
(breadth-first search over passable non-lava cells, 4-neighbourhood) say whether they are.

Domain randomisation (``random_level``), as dcd's DR maze baseline (``GoalLastVariableBlocksAdversarialEnv``
and its ``reset_random``): the goal, then the agent (direction uniform in 0..3) on distinct uniform cells,
then ``num_walls`` walls on distinct empty cells, ``num_walls`` uniform in ``0 .. DR_MAX_WALLS - 1`` = 0..59
(dcd: ``np.random.randint(0, n_clutter)`` with ``n_clutter = 60``).

The env, ``openrl/Maze-v0`` (:class:`MazeEnv`), is MiniGrid's ``MiniGridEnv`` (its grid, ``Wall``, ``Goal``,
``Lava`` and ``Floor`` objects, step logic and reward) on a ``(size + 2)``-square grid, with dcd's maze
settings: ``agent_view_size`` 5, ``see_through_walls=True`` (dcd's speed setting: the 5x5 view is not
occluded), ``max_steps`` 250 (dcd's ``max_steps=250`` for its adversarial/DR mazes; its named test mazes use
``2 * (size + 2) ** 2``, which ``envs.maze_named`` keeps), actions left / right / forward only
(``Discrete(3)``, MiniGrid's first three action ids). Reward: MiniGrid's ``1 - 0.9 * step_count / max_steps``
on reaching the goal, 0 otherwise; stepping into lava ends the episode with 0; moss is a passable floor tile
(MiniGrid's ``Floor``, green), a visual cue only (DRED's cave levels put it near the goal).

Observations (``obs=``), both consumable by the suite's PPO (``agents.nets``):

* ``image`` (default): uint8 ``(5, 5, 4)``: MiniGrid's egocentric view encoding (object, colour, state per
  cell) plus a fourth channel holding the agent's direction on every cell. dcd feeds the direction beside
  the view; a constant plane keeps one Box that the ``grid`` encoder (a learned embedding per code)
  consumes. Codes are at most 10 (MiniGrid's agent id), the space's ``high``.
* ``flat``: float32 ``(5 * 5 * 3 + 4,)``: the view's codes flattened (divided by 10) and a one-hot
  direction, for MLP students.
* ``full``: uint8 ``(size + 2, size + 2, 3)``: the whole grid with the agent encoded in its cell (MiniGrid's
  ``FullyObsWrapper`` encoding): fully observable, so its shape depends on the maze size.

Levels at reset: ``reset(seed, options={"level": level})`` plays ``level`` (a ``MazeLevel``, an encoding or
an ASCII string); without one the env plays its ``next_level`` attribute if set (what a curriculum queues
with ``VectorEnv.set_attr`` for autoresets; used once, then cleared), else a ``random_level`` from its own
seeded generator. ``info["level"]`` is ``encode`` of the level played, in the reset info and every step's;
``info["xy"]`` the agent's interior cell as float64 (for the runner's coverage counters).

``MazeEnv`` is built on first access (module ``__getattr__``): MiniGrid imports pygame, and ``import envs``
(which imports this module through ``envs.maze_spec``) stays free of simulators, as for the other families. The level
API above needs only NumPy.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

MAZE_SIZE = 13
EMPTY, WALL, LAVA, MOSS = 0, 1, 2, 3
NUM_CODES = 4
CODE_NAMES = ("empty", "wall", "lava", "moss")
ENCODING_LENGTH = MAZE_SIZE * MAZE_SIZE + 5
MAX_WALL_TOKENS = 50
TOKEN_LENGTH = MAX_WALL_TOKENS + 2
DR_MAX_WALLS = 60  # exclusive: dcd draws randint(0, 60)

MAX_STEPS = 250
AGENT_VIEW_SIZE = 5
OBS_MODES = ("image", "flat", "full")
MAX_OBJECT_CODE = 10  # MiniGrid's largest code in any channel (OBJECT_TO_IDX["agent"])
MOSS_COLOUR = "green"
MISSION = "get to the green goal square"

ASCII_CELLS = {"#": WALL, ".": EMPTY, "L": LAVA, "m": MOSS}
ASCII_OF_CODE = {code: char for char, code in ASCII_CELLS.items()}
ASCII_AGENT = ">v<^"  # MiniGrid's directions 0 (right), 1 (down), 2 (left), 3 (up)
ASCII_GOAL = "G"


# ---- levels -----------------------------------------------------------------------------------------


def _pos(value: Any, what: str) -> tuple[int, int]:
    try:
        x, y = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"maze level {what} must be a pair of integers (x, y), got {value!r}") from None
    return x, y


@dataclass(eq=False)
class MazeLevel:
    """One maze: ``cells`` (size, size) int8 codes indexed ``[y, x]``, agent start cell and direction, goal cell.

    Construction validates and canonicalises (see the module docstring); ``cells`` is stored as a
    read-only copy so that a level can be shared and hashed. Two levels are equal when their encodings are.
    """

    cells: np.ndarray
    agent_pos: tuple[int, int]
    agent_dir: int
    goal_pos: tuple[int, int]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        cells = np.asarray(self.cells)
        if cells.ndim != 2 or cells.shape[0] != cells.shape[1] or cells.shape[0] < 2:
            raise ValueError(f"maze level cells must be a square grid of at least 2x2, got shape {cells.shape}")
        if not np.issubdtype(cells.dtype, np.integer) and (
                not np.all(np.isfinite(cells)) or not np.all(cells == np.round(cells))):
            raise ValueError("maze level cells must hold integer codes 0 (empty), 1 (wall), 2 (lava), 3 (moss)")
        bad = (cells < 0) | (cells >= NUM_CODES)
        if bad.any():
            y, x = map(int, np.argwhere(bad)[0])
            raise ValueError(f"maze level cell (x={x}, y={y}) has code {cells[y, x]}; valid codes: "
                             f"0 (empty), 1 (wall), 2 (lava), 3 (moss)")
        size = cells.shape[0]
        agent, goal = _pos(self.agent_pos, "agent_pos"), _pos(self.goal_pos, "goal_pos")
        for what, (x, y) in (("agent", agent), ("goal", goal)):
            if not (0 <= x < size and 0 <= y < size):
                raise ValueError(f"maze level {what} position ({x}, {y}) is outside the {size}x{size} grid")
            if cells[y, x] in (WALL, LAVA):
                raise ValueError(f"maze level {what} position ({x}, {y}) is on a {CODE_NAMES[int(cells[y, x])]} cell")
        if agent == goal:
            raise ValueError(f"maze level agent and goal are on the same cell {agent}")
        try:
            agent_dir = int(self.agent_dir)
        except (TypeError, ValueError):
            raise ValueError(f"maze level agent_dir must be an integer 0..3, got {self.agent_dir!r}") from None
        if not 0 <= agent_dir <= 3 or agent_dir != self.agent_dir:
            raise ValueError(f"maze level agent_dir must be 0 (right), 1 (down), 2 (left) or 3 (up), got {self.agent_dir!r}")
        cells = cells.astype(np.int8, copy=True)
        cells[agent[1], agent[0]] = EMPTY  # the agent and goal cover their cell (one encoding per level)
        cells[goal[1], goal[0]] = EMPTY
        cells.flags.writeable = False
        self.cells, self.agent_pos, self.agent_dir, self.goal_pos, self.size = cells, agent, agent_dir, goal, size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MazeLevel):
            return NotImplemented
        return self.size == other.size and np.array_equal(encode(self), encode(other))

    def __hash__(self) -> int:
        return hash(encode(self).tobytes())

    def __repr__(self) -> str:
        return f"MazeLevel(size={self.size}, agent={self.agent_pos}, dir={self.agent_dir}, goal={self.goal_pos})\n" \
               + to_ascii(self)

    @property
    def num_walls(self) -> int:
        return int((self.cells == WALL).sum())


def encoding_length(size: int = MAZE_SIZE) -> int:
    return size * size + 5


def encode(level: MazeLevel) -> np.ndarray:
    """int64 vector: cells row-major (``cells[y, x]``), then agent_x, agent_y, agent_dir, goal_x, goal_y."""
    tail = [*level.agent_pos, level.agent_dir, *level.goal_pos]
    return np.concatenate([level.cells.reshape(-1).astype(np.int64), np.array(tail, dtype=np.int64)])


def decode(vector: Any, size: int | None = None) -> MazeLevel:
    """The level of an ``encode`` vector; the size is inferred from the length unless given. ValueError if
    the vector is malformed (length, non-integers, codes, positions, agent/goal placement)."""
    try:
        arr = np.asarray(vector)
    except (TypeError, ValueError):
        raise ValueError(f"maze level encoding must be a vector of integers, got {type(vector).__name__}") from None
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"maze level encoding must be a 1-D vector of integers, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("maze level encoding must hold integers, got non-integral values")
        arr = arr.astype(np.int64)
    side = size if size is not None else round(float(np.sqrt(max(arr.size - 5, 0))))
    if side < 2 or arr.size != encoding_length(side):
        expected = f"{encoding_length(size)} ({size}x{size} cells + 5)" if size is not None else \
            f"size * size + 5 ({ENCODING_LENGTH} for {MAZE_SIZE}x{MAZE_SIZE})"
        raise ValueError(f"maze level encoding must have {expected} entries, got {arr.size}")
    n = side * side
    ax, ay, adir, gx, gy = (int(v) for v in arr[n:])
    return MazeLevel(arr[:n].reshape(side, side), (ax, ay), adir, (gx, gy))


def as_level(level: Any, size: int | None = None) -> MazeLevel:
    """A ``MazeLevel`` from a level, an encoding or an ASCII string; ValueError if malformed or of another
    ``size`` (when given)."""
    if isinstance(level, MazeLevel):
        out = level
    elif isinstance(level, str):
        out = from_ascii(level)
    else:
        out = decode(level, size)
    if size is not None and out.size != size:
        raise ValueError(f"maze level is {out.size}x{out.size}, this env plays {size}x{size} levels")
    return out


def to_tokens(level: MazeLevel) -> np.ndarray:
    """CLUTR's token sequence: sorted 1-based wall indices (``y * 13 + x + 1``) padded with 0 to 50, then the
    goal's and the agent's index; int64, length ``TOKEN_LENGTH`` (52). Only 13x13 levels of walls (no lava,
    no moss) with at most ``MAX_WALL_TOKENS`` walls have a token form."""
    if level.size != MAZE_SIZE:
        raise ValueError(f"only {MAZE_SIZE}x{MAZE_SIZE} levels have a token form, got {level.size}x{level.size}")
    if np.isin(level.cells, (LAVA, MOSS)).any():
        raise ValueError("the token form holds walls only; this level has lava or moss cells")
    ys, xs = np.nonzero(level.cells == WALL)  # row-major order: already sorted by index
    walls = ys * MAZE_SIZE + xs + 1
    if walls.size > MAX_WALL_TOKENS:
        raise ValueError(f"the token form holds at most {MAX_WALL_TOKENS} walls; this level has {walls.size}")
    tokens = np.zeros(TOKEN_LENGTH, dtype=np.int64)
    tokens[:walls.size] = walls
    tokens[-2] = level.goal_pos[1] * MAZE_SIZE + level.goal_pos[0] + 1
    tokens[-1] = level.agent_pos[1] * MAZE_SIZE + level.agent_pos[0] + 1
    return tokens


def from_tokens(tokens: Any, agent_dir: int = 0, strict: bool = True) -> MazeLevel:
    """The level of a CLUTR token sequence (see ``to_tokens``); tokens carry no direction: the agent gets
    ``agent_dir``. ``strict`` asks for the canonical form (walls sorted, distinct, padding at the end, none
    under the goal or agent); ``strict=False`` reads a generator's raw output as dcd's level editor does:
    walls in any order, repeats and zeros ignored, the goal and agent clear a wall beneath them."""
    arr = np.asarray(tokens)
    if arr.ndim != 1 or arr.size != TOKEN_LENGTH or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"maze tokens must be {TOKEN_LENGTH} integers ({MAX_WALL_TOKENS} wall tokens, goal, agent), "
                         f"got shape {arr.shape} dtype {arr.dtype}")
    n = MAZE_SIZE * MAZE_SIZE
    walls, goal, agent = arr[:MAX_WALL_TOKENS], int(arr[-2]), int(arr[-1])
    if ((walls < 0) | (walls > n)).any():
        raise ValueError(f"maze wall tokens must be 0 (padding) or cell indices 1..{n}, got {walls[(walls < 0) | (walls > n)][0]}")
    for what, index in (("goal", goal), ("agent", agent)):
        if not 1 <= index <= n:
            raise ValueError(f"maze {what} token must be a cell index 1..{n}, got {index}")
    used = walls[walls > 0]
    if strict:
        if (walls[used.size:] != 0).any():
            raise ValueError("maze wall tokens must come first, then 0 padding")
        if (np.diff(used) <= 0).any():
            raise ValueError("maze wall tokens must be sorted and distinct (strict=False accepts raw sequences)")
        for what, index in (("goal", goal), ("agent", agent)):
            if index in used:
                raise ValueError(f"maze {what} token {index} is also a wall token")
    cells = np.zeros(n, dtype=np.int8)
    cells[used - 1] = WALL
    cells = cells.reshape(MAZE_SIZE, MAZE_SIZE)
    goal_pos = ((goal - 1) % MAZE_SIZE, (goal - 1) // MAZE_SIZE)
    agent_pos = ((agent - 1) % MAZE_SIZE, (agent - 1) // MAZE_SIZE)
    cells[goal_pos[1], goal_pos[0]] = EMPTY
    cells[agent_pos[1], agent_pos[0]] = EMPTY
    return MazeLevel(cells, agent_pos, agent_dir, goal_pos)


def to_ascii(level: MazeLevel) -> str:
    """One line per row (no border): ``#`` wall, ``.`` empty, ``L`` lava, ``m`` moss, ``G`` goal, ``>v<^`` agent."""
    rows = [[ASCII_OF_CODE[int(c)] for c in row] for row in level.cells]
    rows[level.goal_pos[1]][level.goal_pos[0]] = ASCII_GOAL
    rows[level.agent_pos[1]][level.agent_pos[0]] = ASCII_AGENT[level.agent_dir]
    return "\n".join("".join(row) for row in rows)


def from_ascii(text: str) -> MazeLevel:
    """The level drawn by ``to_ascii``'s characters: a square of N lines of N characters (surrounding blank
    lines and indentation ignored), exactly one goal and one agent."""
    lines = [line.strip() for line in text.strip("\n").splitlines()]
    lines = [line for line in lines if line]
    size = len(lines)
    if size < 2:
        raise ValueError(f"maze ASCII level needs at least 2 lines, got {size}")
    cells = np.zeros((size, size), dtype=np.int8)
    agents, goals = [], []
    for y, line in enumerate(lines):
        if len(line) != size:
            raise ValueError(f"maze ASCII level must be {size} lines of {size} characters; line {y + 1} has "
                             f"{len(line)}: {line!r}")
        for x, char in enumerate(line):
            if char in ASCII_CELLS:
                cells[y, x] = ASCII_CELLS[char]
            elif char == ASCII_GOAL:
                goals.append((x, y))
            elif char in ASCII_AGENT:
                agents.append(((x, y), ASCII_AGENT.index(char)))
            else:
                raise ValueError(f"maze ASCII level has an unknown character {char!r} at line {y + 1}, column {x + 1}; "
                                 f"valid: # wall, . empty, L lava, m moss, G goal, > v < ^ agent")
    if len(goals) != 1 or len(agents) != 1:
        raise ValueError(f"maze ASCII level needs exactly one goal (G) and one agent (> v < ^), got "
                         f"{len(goals)} and {len(agents)}")
    (agent_pos, agent_dir), goal_pos = agents[0], goals[0]
    return MazeLevel(cells, agent_pos, agent_dir, goal_pos)


def _passable(level: MazeLevel) -> np.ndarray:
    return (level.cells != WALL) & (level.cells != LAVA)


def shortest_path_length(level: MazeLevel) -> int | None:
    """Number of moves (cell to neighbouring cell, turns not counted) on a shortest path from the agent to
    the goal through passable non-lava cells; None if there is none."""
    free = _passable(level)
    size = level.size
    dist = np.full((size, size), -1, dtype=np.int64)
    ax, ay = level.agent_pos
    gx, gy = level.goal_pos
    dist[ay, ax] = 0
    queue = deque([(ax, ay)])
    while queue:
        x, y = queue.popleft()
        if (x, y) == (gx, gy):
            return int(dist[y, x])
        d = dist[y, x] + 1
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < size and 0 <= ny < size and free[ny, nx] and dist[ny, nx] < 0:
                dist[ny, nx] = d
                queue.append((nx, ny))
    return None


def is_solvable(level: MazeLevel) -> bool:
    """Whether the goal can be reached from the agent's start (BFS over passable non-lava cells)."""
    return shortest_path_length(level) is not None


def random_level(rng: np.random.Generator, num_walls: int | None = None, size: int = MAZE_SIZE) -> MazeLevel:
    """Domain randomisation as dcd's DR maze: goal, then agent (uniform direction) on distinct uniform cells,
    then ``num_walls`` walls (uniform in 0..59 when None) on distinct empty cells. May be unsolvable."""
    n = size * size
    if num_walls is None:
        num_walls = int(rng.integers(0, DR_MAX_WALLS))
    if not 0 <= num_walls <= n - 2:
        raise ValueError(f"num_walls must be in 0..{n - 2} for a {size}x{size} maze, got {num_walls}")
    goal, agent = (int(i) for i in rng.choice(n, size=2, replace=False))
    agent_dir = int(rng.integers(0, 4))
    free = np.setdiff1d(np.arange(n), [goal, agent])
    cells = np.zeros(n, dtype=np.int8)
    cells[rng.choice(free, size=num_walls, replace=False)] = WALL
    return MazeLevel(cells.reshape(size, size), (agent % size, agent // size), agent_dir, (goal % size, goal // size))


# ---- the environment --------------------------------------------------------------------------------


def _mission() -> str:
    return MISSION


@functools.cache
def _env_class() -> type:
    """``MazeEnv``, built on first use: MiniGrid (and the pygame it imports) stays out of ``import envs``."""
    from minigrid.core.grid import Grid
    from minigrid.core.mission import MissionSpace
    from minigrid.core.world_object import Floor, Goal, Lava, Wall
    from minigrid.minigrid_env import MiniGridEnv

    class MazeEnv(MiniGridEnv):
        """MiniGrid maze playing a given level; see the module docstring."""

        metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

        def __init__(self, size: int = MAZE_SIZE, max_steps: int = MAX_STEPS, obs: str = "image",
                     agent_view_size: int = AGENT_VIEW_SIZE, render_mode: str | None = None):
            if obs not in OBS_MODES:
                raise ValueError(f"unknown maze obs {obs!r}; choose one of: {', '.join(OBS_MODES)}")
            if int(size) < 2:
                raise ValueError(f"maze size must be >= 2, got {size}")
            if int(max_steps) < 1:
                raise ValueError(f"maze max_steps must be >= 1, got {max_steps}")
            super().__init__(MissionSpace(mission_func=_mission), grid_size=int(size) + 2, max_steps=int(max_steps),
                             see_through_walls=True, agent_view_size=agent_view_size, render_mode=render_mode)
            self.size, self.obs_mode = int(size), obs
            self.action_space = gym.spaces.Discrete(3)  # left, right, forward (MiniGrid's ids 0, 1, 2)
            view = self.agent_view_size
            if obs == "image":
                self.observation_space = gym.spaces.Box(0, MAX_OBJECT_CODE, (view, view, 4), np.uint8)
            elif obs == "flat":
                self.observation_space = gym.spaces.Box(0.0, 1.0, (view * view * 3 + 4,), np.float32)
            else:
                self.observation_space = gym.spaces.Box(0, MAX_OBJECT_CODE, (self.size + 2, self.size + 2, 3), np.uint8)
            # The level of the next reset without a level option (a vector env's autoreset), queued by a teacher
            # with ``VectorEnv.set_attr("next_level", ...)``; used once, then the default applies again.
            self.next_level: Any = None
            self.level: MazeLevel | None = None
            self._level_code: np.ndarray | None = None
            self._pending: MazeLevel | None = None

        # ---- MiniGrid hooks ------------------------------------------------------------------------------

        def _gen_grid(self, width: int, height: int) -> None:
            level = self._pending if self._pending is not None else random_level(self.np_random, size=self.size)
            self._pending = None
            self.grid = Grid(width, height)
            self.grid.wall_rect(0, 0, width, height)
            for (y, x), code in np.ndenumerate(level.cells):
                if code == WALL:
                    self.grid.set(x + 1, y + 1, Wall())
                elif code == LAVA:
                    self.grid.set(x + 1, y + 1, Lava())
                elif code == MOSS:
                    self.grid.set(x + 1, y + 1, Floor(MOSS_COLOUR))
            self.put_obj(Goal(), level.goal_pos[0] + 1, level.goal_pos[1] + 1)
            self.agent_pos = (level.agent_pos[0] + 1, level.agent_pos[1] + 1)
            self.agent_dir = level.agent_dir
            self.mission = MISSION
            self.level = level

        def _observe(self, raw: dict[str, Any]) -> np.ndarray:
            if self.obs_mode == "image":
                image = raw["image"]
                direction = np.full(image.shape[:2] + (1,), self.agent_dir, dtype=np.uint8)
                return np.concatenate([image.astype(np.uint8), direction], axis=2)
            if self.obs_mode == "flat":
                onehot = np.zeros(4, dtype=np.float32)
                onehot[self.agent_dir] = 1.0
                return np.concatenate([raw["image"].reshape(-1).astype(np.float32) / MAX_OBJECT_CODE, onehot])
            full = self.grid.encode()
            full[self.agent_pos[0], self.agent_pos[1]] = (MAX_OBJECT_CODE, 0, self.agent_dir)  # FullyObsWrapper's agent
            return full.astype(np.uint8)

        def _info(self) -> dict[str, Any]:
            return {"level": self._level_code,
                    "xy": np.array([self.agent_pos[0] - 1, self.agent_pos[1] - 1], dtype=np.float64)}

        # ---- Gymnasium API ------------------------------------------------------------------------------

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
            level = (options or {}).get("level")
            if level is None and self.next_level is not None:
                level, self.next_level = self.next_level, None
            # Validated before MiniGrid's reset so that a bad level leaves the env as it was.
            self._pending = None if level is None else as_level(level, self.size)
            raw, _ = super().reset(seed=seed)
            code = encode(self.level)
            code.flags.writeable = False  # the same array goes into every info of the episode
            self._level_code = code
            return self._observe(raw), self._info()

        def step(self, action: Any):
            if not self.action_space.contains(action):
                raise ValueError(f"maze actions are 0 (left), 1 (right), 2 (forward); got {action!r}")
            raw, reward, terminated, truncated, _ = super().step(int(action))
            return self._observe(raw), float(reward), terminated, truncated, self._info()

    MazeEnv.__qualname__ = "MazeEnv"  # pickled by reference as envs.maze.MazeEnv (module __getattr__)
    return MazeEnv


def __getattr__(name: str) -> Any:
    if name == "MazeEnv":
        return _env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- the spec ---------------------------------------------------------------------------------------
