"""Procedural maze levels: perfect mazes and DRED's grounding data set of structured cave-escape levels.

DRED (Garcia et al., "Data-Regularised Environment Design") grounds its teacher in a data set of levels
from a target distribution: 512 training levels from 4 task structures (128 each) and 2048 held-out test
levels (512 each), "cave escape" mazes whose lava sits far from the goal and whose moss sits near it.
Its levels come from wave function collapse over image templates (``obstacles_hogs3``, ``maze_wall``,
``maze_paths``, ``rooms_office``); we do not ship those templates or a WFC solver. Instead four seeded
generators of our own give the same kinds of structure on the 13x13 interior:

* ``rooms``: recursive division into rooms of 3-7 cells a side (walls on odd rows/columns, one or two
  doorways per wall);
* ``maze``: a perfect maze (Kruskal's algorithm on the lattice of even cells, as dcd's PerfectMaze
  envs), then a random 0-25% of its remaining inner walls knocked through, so that some levels have loops;
* ``obstacles``: 4-10 rectangular blocks (1-3 cells a side) scattered over an open room;
* ``walls``: 1-3 long straight walls across the room, each with one or two gaps.

Then DRED's cave treatment (its ``lava_distribution_params`` / ``moss_distribution_params``): a fraction
drawn in [0.1, 0.25] of the wall cells becomes lava and the same kind of fraction of the empty cells
becomes moss, drawn without replacement with "power rank" weights 1 / rank (temperature 1), lava ranked
by distance from the goal (farthest first), moss by closeness to it. Distances are breadth-first over
the passable cells from the goal; a wall cell counts one more than its closest passable neighbour. Lava
only ever replaces walls, so it never cuts the path to the goal. The goal and the agent (direction
uniform) are placed on distinct cells of the largest connected region of floor, so every level is
solvable (``is_solvable`` is asserted).

Sets (``grounding_levels``): level ``i`` of a split uses structure ``i % 4`` and its own generator seeded
by ``(seed, split, i)``, so a set is deterministic and a smaller one is a prefix of a larger one.
Duplicates are skipped (the next seed is used), and held-out candidates equal to a training level (by
encoding) are skipped too: the held-out set is disjoint from the training set. ``heldout_levels(n)`` is
the held-out prefix the ``heldout`` evaluation suite and ``MazeSpec.test_levels`` use.

Data set files (``save_levels`` / ``load_levels``): one ``.npz`` holding ``levels``, an int64 array of
encodings (n, 174), and ``metadata``, a JSON string (generator, seed, split, counts, ...). A missing,
unreadable or malformed file is one ``ValueError`` naming it. Command line::

    python -m envs.maze_gen out=data/grounding_train.npz split=train n=512 seed=0
"""

from __future__ import annotations

import functools
import json
import sys
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.maze import EMPTY, ENCODING_LENGTH, LAVA, MAZE_SIZE, MOSS, WALL, MazeLevel, decode, encode, is_solvable

STRUCTURES = ("rooms", "maze", "obstacles", "walls")
SPLITS = ("train", "heldout")
N_TRAIN = 512  # DRED: 128 training levels per structure
N_HELDOUT = 2048  # DRED: 512 test levels per structure
LAVA_FRACTION = (0.1, 0.25)  # of the wall cells
MOSS_FRACTION = (0.1, 0.25)  # of the empty cells
FORMAT_VERSION = 1


# ---- building blocks --------------------------------------------------------------------------------


def perfect_maze_cells(rng: np.random.Generator, size: int) -> np.ndarray:
    """A perfect maze (exactly one path between any two floor cells) on a ``size`` x ``size`` grid (odd size):
    floor on the lattice of even cells, joined by Kruskal's algorithm over shuffled lattice edges."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"perfect mazes need an odd size >= 3, got {size}")
    cells = np.full((size, size), WALL, dtype=np.int8)
    cells[::2, ::2] = EMPTY
    side = size // 2 + 1
    parent = list(range(side * side))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = [(r * side + c, r * side + c + 1) for r in range(side) for c in range(side - 1)]
    edges += [(r * side + c, (r + 1) * side + c) for r in range(side - 1) for c in range(side)]
    for k in rng.permutation(len(edges)):
        a, b = edges[k]
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            (ya, xa), (yb, xb) = divmod(a, side), divmod(b, side)
            cells[ya + yb, xa + xb] = EMPTY  # the wall cell between the two lattice cells
    return cells


def bfs_distances(free: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Moves from ``start`` = (x, y) to every cell through ``free`` cells (4-neighbourhood); -1 if unreachable."""
    h, w = free.shape
    dist = np.full((h, w), -1, dtype=np.int64)
    dist[start[1], start[0]] = 0
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        d = dist[y, x] + 1
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < w and 0 <= ny < h and free[ny, nx] and dist[ny, nx] < 0:
                dist[ny, nx] = d
                queue.append((nx, ny))
    return dist


def largest_region(free: np.ndarray) -> np.ndarray:
    """Mask of the largest 4-connected region of ``free`` cells."""
    labels = np.full(free.shape, -1, dtype=np.int64)
    best, best_size = -1, 0
    for y, x in zip(*np.nonzero(free), strict=True):
        if labels[y, x] >= 0:
            continue
        region = bfs_distances(free, (int(x), int(y))) >= 0
        label = int(y * free.shape[1] + x)
        labels[region] = label
        if region.sum() > best_size:
            best, best_size = label, int(region.sum())
    return labels == best


def _power_rank_choice(rng: np.random.Generator, candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``candidates`` without replacement, weights 1 / rank of ``scores`` (highest first; ties in
    random order): DRED's ``power_rank`` distribution at temperature 1."""
    if k <= 0 or candidates.size == 0:
        return candidates[:0]
    order = np.lexsort((rng.random(scores.size), -scores))
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.arange(1, scores.size + 1)
    weights = 1.0 / ranks
    return candidates[rng.choice(candidates.size, size=min(k, candidates.size), replace=False, p=weights / weights.sum())]


# ---- structures: each returns a wall layout (cells of EMPTY / WALL) ---------------------------------------


def rooms_layout(rng: np.random.Generator, size: int = MAZE_SIZE) -> np.ndarray:
    """Recursive division: walls on odd rows/columns with one or two doorways on even cells, never closer than
    three cells to a parallel wall; regions stop splitting at random once they are small (rooms 3-7 cells a side)."""
    cells = np.zeros((size, size), dtype=np.int8)

    def divide(x0: int, y0: int, x1: int, y1: int, depth: int) -> None:  # inclusive bounds, even corners
        w, h = x1 - x0 + 1, y1 - y0 + 1
        axes = [axis for axis, extent in (("x", w), ("y", h)) if extent >= 7]
        if not axes or (depth > 0 and max(w, h) <= 9 and rng.random() < 0.3):
            return
        axis = axes[0] if len(axes) == 1 else ("x" if w > h else "y" if h > w else str(rng.choice(["x", "y"])))
        lo, hi, across = (x0, x1, h) if axis == "x" else (y0, y1, w)
        at = int(rng.choice(np.arange(lo + 3, hi - 2, 2)))
        span = np.arange(y0, y1 + 1, 2) if axis == "x" else np.arange(x0, x1 + 1, 2)
        doors = rng.choice(span, size=1 + int(across > 7 and rng.random() < 0.5), replace=False)
        if axis == "x":
            cells[y0:y1 + 1, at] = WALL
            cells[doors, at] = EMPTY
            divide(x0, y0, at - 1, y1, depth + 1)
            divide(at + 1, y0, x1, y1, depth + 1)
        else:
            cells[at, x0:x1 + 1] = WALL
            cells[at, doors] = EMPTY
            divide(x0, y0, x1, at - 1, depth + 1)
            divide(x0, at + 1, x1, y1, depth + 1)

    divide(0, 0, size - 1, size - 1, 0)
    return cells


def maze_layout(rng: np.random.Generator, size: int = MAZE_SIZE) -> np.ndarray:
    """A perfect maze with a random 0-25% of its inner walls between two corridors knocked through."""
    cells = perfect_maze_cells(rng, size)
    ys, xs = np.nonzero(cells == WALL)
    # Walls that separate two lattice cells (one odd coordinate): removing one makes a loop.
    between = (ys % 2) != (xs % 2)
    ys, xs = ys[between], xs[between]
    k = round(float(rng.uniform(0.0, 0.25)) * ys.size)
    for i in rng.choice(ys.size, size=k, replace=False):
        cells[ys[i], xs[i]] = EMPTY
    return cells


def obstacles_layout(rng: np.random.Generator, size: int = MAZE_SIZE) -> np.ndarray:
    """4-10 rectangular blocks of 1-3 cells a side at random places."""
    cells = np.zeros((size, size), dtype=np.int8)
    for _ in range(int(rng.integers(4, 11))):
        bw, bh = (int(v) for v in rng.integers(1, 4, size=2))
        x, y = int(rng.integers(0, size - bw + 1)), int(rng.integers(0, size - bh + 1))
        cells[y:y + bh, x:x + bw] = WALL
    return cells


def walls_layout(rng: np.random.Generator, size: int = MAZE_SIZE) -> np.ndarray:
    """1-3 long straight walls across the room (on any row or column but the first and last, parallel ones at
    least two cells apart), each with one or two gaps; a crossing wall may close a gap (the agent and goal go
    on the largest floor region)."""
    cells = np.zeros((size, size), dtype=np.int8)
    used: dict[bool, list[int]] = {True: [], False: []}
    for _ in range(int(rng.integers(1, 4))):
        horizontal = bool(rng.random() < 0.5)
        free = [a for a in range(1, size - 1) if all(abs(a - b) >= 3 for b in used[horizontal])]
        if not free:
            continue
        at = int(rng.choice(free))
        used[horizontal].append(at)
        line = np.full(size, WALL, dtype=np.int8)
        line[rng.choice(size, size=int(rng.integers(1, 3)), replace=False)] = EMPTY
        if horizontal:
            cells[at, :] = line
        else:
            cells[:, at] = line
    return cells


LAYOUTS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "rooms": rooms_layout, "maze": maze_layout, "obstacles": obstacles_layout, "walls": walls_layout,
}


# ---- cave escape levels -----------------------------------------------------------------------------


def cave_level(rng: np.random.Generator, layout: np.ndarray, lava: bool = True, moss: bool = True) -> MazeLevel:
    """A solvable level on ``layout`` (EMPTY / WALL cells): goal and agent on the largest floor region, then
    lava on walls far from the goal and moss on floor near it (DRED's cave escape)."""
    cells = np.array(layout, dtype=np.int8)
    size = cells.shape[0]
    region = largest_region(cells == EMPTY)
    spots = np.flatnonzero(region)
    if spots.size < 2:
        raise ValueError("layout has fewer than two connected floor cells")
    goal_i, agent_i = (int(i) for i in rng.choice(spots, size=2, replace=False))
    goal, agent = (goal_i % size, goal_i // size), (agent_i % size, agent_i // size)
    dist = bfs_distances(cells == EMPTY, goal).astype(np.float64)
    far = float(dist.max()) + 1.0
    dist[dist < 0] = far  # floor not connected to the goal
    if lava:
        walls = np.flatnonzero(cells == WALL)
        if walls.size:
            # A wall's distance: one more than its closest passable neighbour's (far when it has none).
            padded = np.pad(np.where(cells == EMPTY, dist, np.inf), 1, constant_values=np.inf)
            neighbour = np.minimum.reduce([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
            wall_dist = np.where(np.isfinite(neighbour), neighbour + 1.0, far).reshape(-1)[walls]
            k = round(float(rng.uniform(*LAVA_FRACTION)) * walls.size)
            cells.reshape(-1)[_power_rank_choice(rng, walls, wall_dist, k)] = LAVA
    if moss:
        floor = np.setdiff1d(np.flatnonzero(cells == EMPTY), [goal_i, agent_i])
        if floor.size:
            k = round(float(rng.uniform(*MOSS_FRACTION)) * floor.size)
            cells.reshape(-1)[_power_rank_choice(rng, floor, -dist.reshape(-1)[floor], k)] = MOSS
    level = MazeLevel(cells, agent, int(rng.integers(0, 4)), goal)
    assert is_solvable(level), "cave_level built an unsolvable level"
    return level


def structured_level(rng: np.random.Generator, structure: str, size: int = MAZE_SIZE, cave: bool = True) -> MazeLevel:
    """One level of ``structure`` (one of ``STRUCTURES``), with the cave treatment unless ``cave=False``."""
    if structure not in LAYOUTS:
        raise ValueError(f"unknown maze structure {structure!r}; choose one of: {', '.join(STRUCTURES)}")
    return cave_level(rng, LAYOUTS[structure](rng, size), lava=cave, moss=cave)


# ---- the grounding data set ---------------------------------------------------------------------------


def _stream(split_index: int, seed: int, exclude: frozenset[bytes]):
    """(structure, encoding) of one split's levels in order: candidate i uses structure i % 4 and the generator
    (seed, split, i); duplicates and excluded encodings are skipped."""
    seen = set(exclude)
    i = 0
    while True:
        structure = STRUCTURES[i % len(STRUCTURES)]
        rng = np.random.default_rng([seed, split_index, i])
        code = encode(structured_level(rng, structure))
        key = code.tobytes()
        if key not in seen:
            seen.add(key)
            yield structure, code
        i += 1


def _take(stream, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    pairs = [next(stream) for _ in range(n)]
    codes = np.stack([c for _, c in pairs]) if pairs else np.zeros((0, ENCODING_LENGTH), np.int64)
    codes.flags.writeable = False
    return codes, tuple(s for s, _ in pairs)


@functools.lru_cache(maxsize=8)
def _train_set(n_train: int, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    return _take(_stream(0, seed, frozenset()), n_train)


@functools.lru_cache(maxsize=8)
def _heldout_set(n_heldout: int, n_train: int, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    exclude = frozenset(row.tobytes() for row in _train_set(n_train, seed)[0])
    return _take(_stream(1, seed, exclude), n_heldout)


def _split(split: str, n_train: int, n_heldout: int, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    if split not in SPLITS:
        raise ValueError(f"unknown grounding split {split!r}; choose one of: {', '.join(SPLITS)}")
    if n_train < 0 or n_heldout < 0:
        raise ValueError(f"grounding set sizes must be >= 0, got n_train={n_train} n_heldout={n_heldout}")
    return _train_set(n_train, seed) if split == "train" else _heldout_set(n_heldout, n_train, seed)


def grounding_levels(split: str = "train", n_train: int = N_TRAIN, n_heldout: int = N_HELDOUT, seed: int = 0) -> np.ndarray:
    """DRED's grounding data: the ``train`` (``n_train`` levels) or ``heldout`` (``n_heldout`` levels, none equal
    to a training level of the same ``n_train`` and ``seed``) split as encodings, int64 (n, 174). Cached."""
    return _split(split, n_train, n_heldout, seed)[0].copy()


def grounding_structures(split: str = "train", n_train: int = N_TRAIN, n_heldout: int = N_HELDOUT,
                         seed: int = 0) -> list[str]:
    """The structure (one of ``STRUCTURES``) of each level of ``grounding_levels`` with the same arguments."""
    return list(_split(split, n_train, n_heldout, seed)[1])


def heldout_levels(n: int = N_HELDOUT, seed: int = 0) -> np.ndarray:
    """The first ``n`` held-out grounding levels (disjoint from the default 512 training levels), (n, 174)."""
    if n < 1:
        raise ValueError(f"heldout_levels needs n >= 1, got {n}")
    return grounding_levels("heldout", n_heldout=n, seed=seed)


# ---- files ------------------------------------------------------------------------------------------


def save_levels(path: str | Path, levels: Sequence[Any] | np.ndarray, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``levels`` (MazeLevels or encodings of one size) and JSON-serialisable ``metadata`` to one ``.npz``
    (written to a temporary name, then renamed)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"maze level files are .npz, got {str(path)!r}")
    rows = [encode(lv) if isinstance(lv, MazeLevel) else encode(decode(lv)) for lv in levels]
    if not rows:
        raise ValueError("save_levels needs at least one level")
    if len({row.size for row in rows}) != 1:
        raise ValueError("save_levels needs levels of one size")
    meta = {"format_version": FORMAT_VERSION, "count": len(rows), **(metadata or {})}
    try:
        meta_json = json.dumps(meta)
    except TypeError as exc:
        raise ValueError(f"save_levels metadata must be JSON-serialisable: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, levels=np.stack(rows).astype(np.int64), metadata=np.array(meta_json))
    tmp.replace(path)
    return path


def _read(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"maze level file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "levels" not in data or "metadata" not in data:
                raise ValueError(f"maze level file {str(path)!r} lacks 'levels' or 'metadata' (not written by save_levels)")
            levels, meta = data["levels"], json.loads(str(data["metadata"]))
    except ValueError as exc:
        if str(exc).startswith("maze level file"):
            raise
        raise ValueError(f"maze level file {str(path)!r} is corrupt or not an .npz: {exc}") from None
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise ValueError(f"maze level file {str(path)!r} is corrupt or not an .npz: {exc}") from None
    if levels.ndim != 2 or not np.issubdtype(levels.dtype, np.integer) or levels.shape[0] == 0:
        raise ValueError(f"maze level file {str(path)!r} must hold a non-empty (n, length) integer array, "
                         f"got shape {levels.shape} dtype {levels.dtype}")
    for i, row in enumerate(levels):
        try:
            decode(row)
        except ValueError as exc:
            raise ValueError(f"maze level file {str(path)!r}: level {i} is malformed: {exc}") from None
    return levels.astype(np.int64), meta


def load_levels(path: str | Path) -> np.ndarray:
    """The encodings in a ``save_levels`` file, int64 (n, length); every level is validated. ValueError for a
    missing, corrupt or malformed file."""
    return _read(path)[0]


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata dict of a ``save_levels`` file."""
    return _read(path)[1]


def write_grounding_set(path: str | Path, split: str = "train", n: int | None = None, seed: int = 0) -> Path:
    """Save a grounding split (default sizes: DRED's 512 training / 2048 held-out levels) to ``path``."""
    n = (N_TRAIN if split == "train" else N_HELDOUT) if n is None else n
    levels = grounding_levels(split, n_train=n if split == "train" else N_TRAIN, n_heldout=n, seed=seed)
    meta = {"generator": "envs.maze_gen.grounding_levels", "split": split, "seed": seed, "structures": list(STRUCTURES),
            "n_train_excluded": N_TRAIN if split == "heldout" else None}
    return save_levels(path, levels, meta)


def main(argv: list[str] | None = None) -> int:
    """``python -m envs.maze_gen out=FILE.npz [split=train|heldout] [n=N] [seed=S]``."""
    args = dict(a.partition("=")[::2] for a in (sys.argv[1:] if argv is None else argv))
    unknown = set(args) - {"out", "split", "n", "seed"}
    if "out" not in args or unknown:
        print("usage: python -m envs.maze_gen out=FILE.npz [split=train|heldout] [n=N] [seed=S]", file=sys.stderr)
        return 2
    try:
        n = int(args["n"]) if "n" in args else None
        path = write_grounding_set(args["out"], args.get("split", "train"), n, int(args.get("seed", 0)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(load_levels(path))} levels to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
