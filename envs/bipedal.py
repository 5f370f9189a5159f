"""Parametric BipedalWalker of teachDeepRL (Portelas et al., 2019): "Stump Tracks" and "Hexagon Tracks".

``openrl/ParametricBipedal-v0`` is Gymnasium's Box2D BipedalWalker (v3) on a track whose obstacles are
set by a *level*, a NumPy vector given at reset (the suite's Levels convention, ``envs.base``)::

    obs, info = env.reset(seed=0, options={"level": np.array([height_mean, spacing])})
    info["level"]  # the level played (float64, also in every step's info)

Without a level (or with ``{"level": None}``) the env draws one uniformly in its level box
``[level_low, level_high]`` with its own seeded generator: domain randomisation is the default.

Walker. Physics, reward, observation and action are Gymnasium's BipedalWalker-v3: the same constants
(``SCALE``, ``FPS``, motor torques and speeds, hull polygon, joint limits, friction); reward = the change
of ``130 * x / SCALE - 5 * |hull angle|`` minus ``0.00035 * MOTORS_TORQUE * |a_j|`` summed over joints
(about 300 for walking to the end); -100 and termination when the hull touches the terrain or the walker
leaves by the left; termination past the finish line; observation = 4 hull values, 5 values per leg,
then 10 lidar fractions (the v3 lidar reports the *closest* hit). With ``body="default"`` the spaces are
exactly Gymnasium's (24-D observation, 4-D action). The env is our own ``gym.Env`` (Box2D is imported on
first use, so ``import envs`` stays free of simulators, as Gymnasium's module imports Box2D at import);
rendering (``render_mode="rgb_array"``, or ``"human"`` with a display) calls Gymnasium's BipedalWalker
renderer on this env, which keeps the attributes it reads, and needs ``pygame``.

Bodies (``body=``), as teachDeepRL's ``leg_size``:

* ``default``: Gymnasium's walker (legs 34/SCALE long, 8/SCALE wide).
* ``short``: the same with legs half as long (17/SCALE); spaces unchanged.
* ``quadrupedal``: the reference's "quadru": a longer hull (polygon (-46, 13), (6, 13), (50, 5),
  (50, -12), (-46, -12), in pixels / SCALE), two pairs of legs 51/SCALE long and 10/SCALE wide, hinged at
  x = -1.2 and +0.85 m from the hull centre, motor torque 300 (not 80) and torque penalty 0.00035 / 8.
  Observation 34-D (4 hull + 4 legs x 5 + 10 lidar), action 8-D, ordered (hip, knee) per leg, back pair
  first. One difference from the reference: its legs are first placed at x positions that disagree
  with their joint anchors (the joints pull them into place in the first step); here they start under
  their anchors.

Tracks (``track=``). Lengths are Box2D metres; ``TERRAIN_STEP`` = 14/SCALE m. The ground is flat at
Gymnasium's ``TERRAIN_HEIGHT`` (the reference's stump tracks use roughness 0), built as Gymnasium builds
it (one edge per terrain step, 199 of them), so that on a zero-height level the default walker moves
exactly as Gymnasium's does on its start pad. The walker starts at the centre of the 20-step start pad;
the first obstacle stands at its end (x = 20 steps), then obstacles follow one another to the end of the
ground (x = 199 steps); the episode ends (terminated) past x = 190 steps.

* ``stumps`` (Stump Tracks), level ``[stump_height_mean, spacing]`` in ``[0, 3] x [0, 6]``: stumps one
  ``TERRAIN_STEP`` wide separated by ``spacing`` metres of flat ground. Each stump's height, in
  ``TERRAIN_STEP`` units, is drawn independently as ``max(0, N(mean, sd))`` with ``sd = min(0.1, mean)``.
  The reference draws ``max(0.05, N(mean, 0.1))``; the two agree for means >= 0.1 except for the
  reference's 0.05 floor. Ours shrinks the spread with the mean so that the height goes continuously to
  0 and a zero-height level is a flat track (the reference's still has bumps of about 4 cm). Stumps lower
  than ``MIN_OBSTACLE_HEIGHT`` (1 cm) are not built.
* ``hexagons`` (Hexagon Tracks), level = 12 offsets in ``[0, 4]``: (dx, dy) of the 6 vertices of a small
  hexagon (``HEXAGON``, in ``TERRAIN_STEP`` units), each drawn per obstacle as ``N(offset, 0.1)``; the two
  ground vertices keep y = 0. The obstacle is the convex hull of these points (as Box2D builds it).
  Obstacles start every 1 m + ``HEXAGON_SPACING`` (8 m), the reference's spacing when it is not a
  parameter. The reference draws the noise from NumPy's global generator; here it is the env's own
  (seeded) generator.

Inspecting a track: ``env.unwrapped.stump_heights`` (every stump's drawn height in ``TERRAIN_STEP``
units, built or not), ``env.unwrapped.obstacles`` (the vertices of each obstacle built, in metres) and
``env.unwrapped.terrain`` (the static Box2D bodies: obstacles, then the ground edges).

Evaluation as in the paper: ``BipedalSpec().test_levels(50)`` is a fixed set of levels drawn uniformly
in the box (from ``TEST_SET_SEED``; the same for every run, and ``test_levels(n)`` is a prefix of
``test_levels(m)`` for n < m; it is not the reference's pickled set, which we do not ship). A level is
*mastered* when the episodic return exceeds ``MASTERY_RETURN`` (230); ``percent_mastered(returns)``
gives the share. ``SCORE_RANGE`` (-150, 350) is the reference controller's return range for turning
returns into competences (a teacher's ``score_low``/``score_high``).

Episodes are truncated after ``MAX_EPISODE_STEPS`` = 2000 steps, the reference's ``max_ep_len``
(Gymnasium's BipedalWalker-v3 uses 1600, its hardcore variant 2000).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import EzPickle

from envs.base import EnvSpec

# ---- evaluation protocol of teachDeepRL -------------------------------------------------------------

MASTERY_RETURN = 230.0  # a test level is mastered when the episodic return is > this
SCORE_RANGE = (-150.0, 350.0)  # returns mapped linearly onto competences in [0, 1] by the reference
TEST_SET_SIZE = 50
TEST_SET_SEED = 2019
MAX_EPISODE_STEPS = 2000

BODIES = ("default", "short", "quadrupedal")
TRACKS = ("stumps", "hexagons")

# The level box of each track and the meaning of each parameter (for messages).
TRACK_BOUNDS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "stumps": ((0.0, 0.0), (3.0, 6.0)),
    "hexagons": ((0.0,) * 12, (4.0,) * 12),
}
TRACK_PARAMS = {
    "stumps": "[stump_height_mean, spacing]",
    "hexagons": "12 vertex offsets [dx0, dy0, ..., dx5, dy5]",
}

# ---- Gymnasium's BipedalWalker-v3 constants (gymnasium/envs/box2d/bipedal_walker.py, unchanged) --------

FPS = 50
SCALE = 30.0
MOTORS_TORQUE = 80.0
SPEED_HIP = 4.0
SPEED_KNEE = 6.0
LIDAR_RANGE = 160 / SCALE
N_LIDAR = 10
INITIAL_RANDOM = 5.0
HULL_POLY = ((-30, 9), (6, 9), (34, 1), (34, -8), (-30, -8))
LEG_DOWN = -8 / SCALE
VIEWPORT_W, VIEWPORT_H = 600, 400
TERRAIN_STEP = 14 / SCALE
TERRAIN_LENGTH = 200  # in steps
TERRAIN_HEIGHT = VIEWPORT_H / SCALE / 4
TERRAIN_GRASS = 10  # the finish line is this many steps before the end
TERRAIN_STARTPAD = 20  # in steps
FRICTION = 2.5
TORQUE_PENALTY = 0.00035

# ---- tracks -----------------------------------------------------------------------------------------

STUMP_HEIGHT_SD = 0.1  # spread of the stump heights around the level's mean (TERRAIN_STEP units)
MIN_OBSTACLE_HEIGHT = 0.01  # metres; lower stumps are left out (Box2D cannot build flatter polygons)
HEXAGON = ((-0.5, 0.0), (-0.5, 0.25), (-0.25, 0.5), (0.25, 0.5), (0.5, 0.25), (0.5, 0.0))
HEXAGON_SD = 0.1
HEXAGON_ADVANCE = 1.0  # metres from one hexagon's anchor to the start of the next gap
HEXAGON_SPACING = 8.0  # metres of flat ground after each hexagon
MIN_OBSTACLE_AREA = 1e-3  # m^2; flatter hexagon hulls are left out
# A level reported back by a teacher may leave the box by a float32 round trip: within this share of the
# box's range (of 1 for a zero range) it is clipped into the box, beyond it is an error.
LEVEL_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Body:
    """A walker's shape: hull polygon (pixels; divided by SCALE), legs (metres), motors."""

    hull_poly: tuple[tuple[float, float], ...]
    leg_w: float
    leg_h: float
    leg_pairs_x: tuple[float, ...]  # hinge x of each pair of legs, metres from the hull's centre
    motors_torque: float
    torque_penalty: float

    @property
    def n_legs(self) -> int:
        return 2 * len(self.leg_pairs_x)


BODY_SHAPES: dict[str, Body] = {
    "default": Body(HULL_POLY, 8 / SCALE, 34 / SCALE, (0.0,), MOTORS_TORQUE, TORQUE_PENALTY),
    "short": Body(HULL_POLY, 8 / SCALE, 17 / SCALE, (0.0,), MOTORS_TORQUE, TORQUE_PENALTY),
    "quadrupedal": Body(((-46, 13), (6, 13), (50, 5), (50, -12), (-46, -12)), 10 / SCALE, 51 / SCALE,
                        (-1.2, 0.85), 300.0, TORQUE_PENALTY / 8),
}


# ---- levels -----------------------------------------------------------------------------------------


def _choices(what: str, value: Any, choices: Sequence[str]) -> ValueError:
    return ValueError(f"unknown bipedal {what} {value!r}; choose one of: {', '.join(choices)}")


def check_level_bounds(track: str, low: Any, high: Any) -> tuple[np.ndarray, np.ndarray]:
    """The level box of ``track`` as float64 vectors, or a one-line ValueError."""
    if track not in TRACKS:
        raise _choices("track", track, TRACKS)
    dims = len(TRACK_BOUNDS[track][0])
    try:
        low_arr = np.asarray(low, dtype=np.float64)
        high_arr = np.asarray(high, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"bipedal level_low/level_high must be lists of numbers, got {low!r} and {high!r}") from None
    if low_arr.shape == (1,) and high_arr.shape == (1,):  # one number for every parameter
        low_arr, high_arr = np.repeat(low_arr, dims), np.repeat(high_arr, dims)
    if low_arr.shape != (dims,) or high_arr.shape != (dims,):
        ref_low, ref_high = TRACK_BOUNDS[track]
        reference = (f"[{ref_low[0]}] and [{ref_high[0]}]" if len(set(ref_low)) == len(set(ref_high)) == 1
                     else f"{list(ref_low)} and {list(ref_high)}")
        raise ValueError(
            f"bipedal track {track!r} has {dims} level parameters ({TRACK_PARAMS[track]}): level_low and "
            f"level_high need {dims} numbers each, or one for all (reference: {reference}), "
            f"got {np.atleast_1d(low_arr).tolist()} and {np.atleast_1d(high_arr).tolist()}"
        )
    if not (np.isfinite(low_arr).all() and np.isfinite(high_arr).all()) or (low_arr < 0).any() \
            or (low_arr > high_arr).any():
        raise ValueError(f"bipedal level bounds need 0 <= level_low <= level_high (finite), "
                         f"got level_low={low_arr.tolist()} level_high={high_arr.tolist()}")
    return low_arr, high_arr


def check_level(level: Any, track: str, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``level`` as a float64 vector inside ``[low, high]`` (tiny overshoots clipped), or a ValueError."""
    what = f"bipedal {track} level must be {low.size} numbers {TRACK_PARAMS[track]}"
    bounds = f"low={low.tolist()} high={high.tolist()}"
    try:
        arr = np.array(level, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}, got {level!r}") from None
    if arr.shape != low.shape:
        raise ValueError(f"{what}, got shape {arr.shape}: {np.ravel(arr).tolist()[:20]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} (finite), got {arr.tolist()}")
    tolerance = LEVEL_TOLERANCE * np.where(high > low, high - low, 1.0)
    if ((arr < low - tolerance) | (arr > high + tolerance)).any():
        raise ValueError(f"{what} within {bounds}, got {arr.tolist()}")
    return np.clip(arr, low, high)


def uniform_levels(low: np.ndarray, high: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` levels drawn uniformly in the box, shape (n, dims); row i does not depend on n."""
    return np.random.default_rng(seed).uniform(low, high, size=(n, low.size))


def percent_mastered(returns: Sequence[float]) -> float:
    """Percentage of episodic returns above ``MASTERY_RETURN`` (the paper's score on its test set)."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size == 0:
        raise ValueError("percent_mastered needs at least one return")
    return 100.0 * float(np.mean(returns > MASTERY_RETURN))


# ---- Box2D (imported on first use) ------------------------------------------------------------------


@functools.cache
def _box2d() -> SimpleNamespace:
    """Box2D, our contact listener and lidar callback, and Gymnasium's walker class (for rendering)."""
    with warnings.catch_warnings():  # SWIG's "builtin type SwigPyPacked has no __module__" noise
        warnings.simplefilter("ignore", DeprecationWarning)
        import Box2D
        from Box2D import b2
        from gymnasium.envs.box2d.bipedal_walker import BipedalWalker

    class Contacts(b2.contactListener):
        """The hull touching anything ends the episode; feet (lower legs) report ground contact."""

        def __init__(self, env: ParametricBipedalWalker):
            super().__init__()
            self.env = env

        def _touch(self, contact, touching: bool) -> None:
            bodies = (contact.fixtureA.body, contact.fixtureB.body)
            if touching and self.env.hull in bodies:
                self.env.game_over = True
            for foot in self.env.legs[1::2]:
                if foot in bodies:
                    foot.ground_contact = touching

        def BeginContact(self, contact):  # Box2D's method names
            self._touch(contact, True)

        def EndContact(self, contact):
            self._touch(contact, False)

    class Lidar(b2.rayCastCallback):
        """Keeps the closest hit on the terrain (category bit 1); the walker's own parts are ignored."""

        def ReportFixture(self, fixture, point, normal, fraction):
            if (fixture.filterData.categoryBits & 1) == 0:
                return -1
            self.p2 = point
            self.fraction = fraction
            return fraction

    return SimpleNamespace(Box2D=Box2D, b2=b2, Contacts=Contacts, Lidar=Lidar, GymWalker=BipedalWalker)


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (monotone chain + shoelace)."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    hull = np.array(half(pts) + half(pts[::-1]))
    if len(hull) < 3:
        return 0.0
    x, y = hull[:, 0], hull[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


# ---- the environment --------------------------------------------------------------------------------


class ParametricBipedalWalker(gym.Env, EzPickle):
    """Gymnasium's BipedalWalker on a level-parameterised track; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": FPS}

    def __init__(self, body: str = "default", track: str = "stumps", level_low: Sequence[float] | None = None,
                 level_high: Sequence[float] | None = None, render_mode: str | None = None):
        EzPickle.__init__(self, body=body, track=track, level_low=level_low, level_high=level_high,
                          render_mode=render_mode)
        if body not in BODY_SHAPES:
            raise _choices("body", body, BODIES)
        if track not in TRACKS:
            raise _choices("track", track, TRACKS)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose one of: human, rgb_array")
        ref_low, ref_high = TRACK_BOUNDS[track]
        self.level_low, self.level_high = check_level_bounds(
            track, ref_low if level_low is None else level_low,
            ref_high if level_high is None else level_high)
        self.body_name, self.body, self.track, self.render_mode = body, BODY_SHAPES[body], track, render_mode
        # The level of the next reset without a level option (a vector env's autoreset), queued by a
        # teacher with ``VectorEnv.set_attr("next_level", ...)``; used once, then the default applies.
        self.next_level: np.ndarray | None = None

        n_legs = self.body.n_legs
        leg_low = [-math.pi, -5.0, -math.pi, -5.0, -0.0]
        leg_high = [math.pi, 5.0, math.pi, 5.0, 5.0]
        # Gymnasium's bounds, with one block of five per leg.
        self.observation_space = gym.spaces.Box(
            np.array([-math.pi, -5.0, -5.0, -5.0] + leg_low * n_legs + [-1.0] * N_LIDAR, dtype=np.float32),
            np.array([math.pi, 5.0, 5.0, 5.0] + leg_high * n_legs + [1.0] * N_LIDAR, dtype=np.float32),
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2 * n_legs,), dtype=np.float32)

        self.world = None  # the Box2D world, made at the first reset
        self.terrain: list[Any] = []
        self.hull = None
        self.legs: list[Any] = []
        self.joints: list[Any] = []
        self.lidar: list[Any] = []
        self.drawlist: list[Any] = []
        self.terrain_poly: list[tuple[list, tuple[int, int, int]]] = []
        self.cloud_poly: list[tuple[list, float, float]] = []
        self.level: np.ndarray | None = None
        self.stump_heights = np.zeros(0)
        self.obstacles: list[list[tuple[float, float]]] = []
        self.game_over = False
        self.prev_shaping: float | None = None
        self.scroll = 0.0
        self.lidar_render = 0
        # Gymnasium's renderer keeps its pygame state in these.
        self.screen = None
        self.clock = None
        self.isopen = True

    # ---- levels -------------------------------------------------------------------------------------

    def sample_level(self) -> np.ndarray:
        """The default level distribution: uniform in ``[level_low, level_high]`` (env's generator)."""
        return self.np_random.uniform(self.level_low, self.level_high)

    # ---- Gymnasium API ------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        level = (options or {}).get("level")
        if level is None and self.next_level is not None:
            level, self.next_level = self.next_level, None
        if level is None:
            level = self.sample_level()
        else:
            level = check_level(level, self.track, self.level_low, self.level_high)
        level.flags.writeable = False  # the same array goes into every info of the episode
        self.level = level

        b2 = _box2d()
        # A fresh world each episode: a reused one keeps traces of the last episode (the order of its
        # bodies and contacts) that change the solver's results, and seeded episodes would differ.
        self._destroy()
        self.world = b2.Box2D.b2World()
        self.world.contactListener_keepref = b2.Contacts(self)
        self.world.contactListener = self.world.contactListener_keepref
        self.game_over = False
        self.prev_shaping = None
        self.scroll = 0.0
        self.lidar_render = 0

        self._build_track()
        self._build_clouds()
        self._build_walker()
        self.drawlist = self.terrain + self.legs + [self.hull]
        self.lidar = [b2.Lidar() for _ in range(N_LIDAR)]
        if self.render_mode == "human":
            self.render()
        # As Gymnasium's walker: the first observation comes from one physics step with zero action.
        obs = self.step(np.zeros(self.action_space.shape, dtype=np.float32))[0]
        return obs, {"level": self.level}

    def step(self, action):
        if self.hull is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64)
        torque = self.body.motors_torque
        for j, (joint, a) in enumerate(zip(self.joints, action)):
            joint.motorSpeed = float((SPEED_HIP if j % 2 == 0 else SPEED_KNEE) * np.sign(a))
            joint.maxMotorTorque = float(torque * min(abs(a), 1.0))
        self.world.Step(1.0 / FPS, 6 * 30, 2 * 30)

        pos, vel = self.hull.position, self.hull.linearVelocity
        for i, ray in enumerate(self.lidar):
            ray.fraction = 1.0
            ray.p1 = pos
            ray.p2 = (pos[0] + math.sin(1.5 * i / N_LIDAR) * LIDAR_RANGE,
                      pos[1] - math.cos(1.5 * i / N_LIDAR) * LIDAR_RANGE)
            self.world.RayCast(ray, ray.p1, ray.p2)

        state = [self.hull.angle, 2.0 * self.hull.angularVelocity / FPS,
                 0.3 * vel.x * (VIEWPORT_W / SCALE) / FPS, 0.3 * vel.y * (VIEWPORT_H / SCALE) / FPS]
        for hip, knee, foot in zip(self.joints[0::2], self.joints[1::2], self.legs[1::2]):
            state += [hip.angle, hip.speed / SPEED_HIP, knee.angle + 1.0, knee.speed / SPEED_KNEE,
                      1.0 if foot.ground_contact else 0.0]
        state += [ray.fraction for ray in self.lidar]
        self.scroll = pos.x - VIEWPORT_W / SCALE / 5

        # Moving forward pays 130 * distance / SCALE (about 300 to the far end); keep the hull level.
        shaping = 130 * pos[0] / SCALE - 5.0 * abs(state[0])
        reward = 0.0 if self.prev_shaping is None else shaping - self.prev_shaping
        self.prev_shaping = shaping
        reward -= self.body.torque_penalty * torque * float(np.clip(np.abs(action), 0, 1).sum())

        terminated = False
        if self.game_over or pos[0] < 0:
            reward, terminated = -100.0, True
        if pos[0] > (TERRAIN_LENGTH - TERRAIN_GRASS) * TERRAIN_STEP:
            terminated = True
        if self.render_mode == "human":
            self.render()
        return np.array(state, dtype=np.float32), float(reward), terminated, False, {"level": self.level}

    def render(self):
        # Gymnasium's renderer reads only attributes this env keeps under the same names (terrain_poly,
        # cloud_poly, drawlist, lidar, scroll, screen, clock, ...).
        return _box2d().GymWalker.render(self)

    def close(self):
        if self.screen is not None:
            import pygame

            pygame.display.quit()
            pygame.quit()
            self.screen = None
        self.isopen = False

    # ---- construction -------------------------------------------------------------------------------

    def _destroy(self) -> None:
        if self.world is None:
            return
        self.world.contactListener = None
        for b in self.terrain + self.legs + ([self.hull] if self.hull is not None else []):
            self.world.DestroyBody(b)
        self.terrain, self.legs, self.joints, self.hull = [], [], [], None

    def _static(self, shape, color1, color2):
        b2 = _box2d().b2
        fixture = b2.fixtureDef(shape=shape, friction=FRICTION, categoryBits=0x0001)
        body = self.world.CreateStaticBody(fixtures=fixture)
        body.color1, body.color2 = color1, color2
        self.terrain.append(body)
        return body

    def _add_obstacle(self, poly: list[tuple[float, float]]) -> None:
        self._static(_box2d().b2.polygonShape(vertices=poly), (255, 255, 255), (153, 153, 153))
        self.obstacles.append(poly)

    def _build_track(self) -> None:
        b2 = _box2d().b2
        rng, y = self.np_random, TERRAIN_HEIGHT
        start, end = TERRAIN_STARTPAD * TERRAIN_STEP, (TERRAIN_LENGTH - 1) * TERRAIN_STEP
        self.obstacles = []
        heights: list[float] = []
        x = start
        if self.track == "stumps":
            mean, spacing = float(self.level[0]), float(self.level[1])
            sd = min(STUMP_HEIGHT_SD, mean)
            while x < end:
                h = max(0.0, float(rng.normal(mean, sd))) if sd > 0 else mean
                heights.append(h)
                top = h * TERRAIN_STEP
                if top >= MIN_OBSTACLE_HEIGHT:
                    right = x + TERRAIN_STEP
                    self._add_obstacle([(x, y), (right, y), (right, y + top), (x, y + top)])
                x += TERRAIN_STEP + spacing
        else:
            base = np.array(HEXAGON)
            while x < end:
                offsets = rng.normal(self.level.reshape(6, 2), HEXAGON_SD)
                offsets[[0, -1], 1] = 0.0  # the two ground vertices stay on the ground
                points = np.array([x, y]) + (base + offsets) * TERRAIN_STEP
                if _hull_area(points) >= MIN_OBSTACLE_AREA:
                    self._add_obstacle([tuple(p) for p in points.tolist()])
                x += HEXAGON_ADVANCE + HEXAGON_SPACING
        self.stump_heights = np.array(heights)

        # Flat ground made as Gymnasium's: one static edge per terrain step (with the walker on a
        # zero-height level, the default body then moves exactly as in Gymnasium's walker on its start pad).
        self.terrain_poly = []
        for i in range(TERRAIN_LENGTH - 1):
            x0, x1 = i * TERRAIN_STEP, (i + 1) * TERRAIN_STEP
            color = (76, 255 if i % 2 == 0 else 204, 76)
            self._static(b2.edgeShape(vertices=[(x0, y), (x1, y)]), color, color)
            self.terrain_poly.append(([(x0, y), (x1, y), (x1, 0), (x0, 0)], (102, 153, 76)))

    def _build_clouds(self) -> None:
        """Decoration for the renderer (drawn from the env's generator, as Gymnasium does)."""
        rng, self.cloud_poly = self.np_random, []
        for _ in range(TERRAIN_LENGTH // 20):
            x = rng.uniform(0, TERRAIN_LENGTH) * TERRAIN_STEP
            y = VIEWPORT_H / SCALE * 3 / 4
            poly = [(x + 15 * TERRAIN_STEP * math.sin(3.14 * 2 * a / 5) + rng.uniform(0, 5 * TERRAIN_STEP),
                     y + 5 * TERRAIN_STEP * math.cos(3.14 * 2 * a / 5) + rng.uniform(0, 5 * TERRAIN_STEP))
                    for a in range(5)]
            self.cloud_poly.append((poly, min(p[0] for p in poly), max(p[0] for p in poly)))

    def _build_walker(self) -> None:
        b2, body = _box2d().b2, self.body
        init_x = TERRAIN_STEP * TERRAIN_STARTPAD / 2
        init_y = TERRAIN_HEIGHT + 2 * body.leg_h

        def part(shape, density, friction=0.2):
            return b2.fixtureDef(shape=shape, density=density, friction=friction, restitution=0.0,
                                 categoryBits=0x0020, maskBits=0x001)  # collide only with the terrain

        hull_shape = b2.polygonShape(vertices=[(px / SCALE, py / SCALE) for px, py in body.hull_poly])
        hull_fd = part(hull_shape, 5.0, 0.1)
        upper_fd = part(b2.polygonShape(box=(body.leg_w / 2, body.leg_h / 2)), 1.0)
        lower_fd = part(b2.polygonShape(box=(0.8 * body.leg_w / 2, body.leg_h / 2)), 1.0)

        self.hull = self.world.CreateDynamicBody(position=(init_x, init_y), fixtures=hull_fd)
        self.hull.color1, self.hull.color2 = (127, 51, 229), (76, 76, 127)
        push = float(self.np_random.uniform(-INITIAL_RANDOM, INITIAL_RANDOM))
        self.hull.ApplyForceToCenter((push, 0), True)

        for anchor_x in body.leg_pairs_x:
            for side in (-1, +1):
                colors = ((153 - side * 25, 76 - side * 25, 127 - side * 25),
                          (102 - side * 25, 51 - side * 25, 76 - side * 25))
                # Creation order (upper leg, hip, lower leg, knee) as Gymnasium's: the solver's order
                # depends on it, and with it the default body moves exactly as Gymnasium's walker does.
                upper = self.world.CreateDynamicBody(
                    position=(init_x + anchor_x, init_y - body.leg_h / 2 - LEG_DOWN), angle=side * 0.05,
                    fixtures=upper_fd)
                upper.color1, upper.color2 = colors
                self.legs.append(upper)
                self.joints.append(self.world.CreateJoint(b2.revoluteJointDef(
                    bodyA=self.hull, bodyB=upper, localAnchorA=(anchor_x, LEG_DOWN),
                    localAnchorB=(0, body.leg_h / 2),
                    enableMotor=True, enableLimit=True, maxMotorTorque=body.motors_torque, motorSpeed=side,
                    lowerAngle=-0.8, upperAngle=1.1)))
                lower = self.world.CreateDynamicBody(
                    position=(init_x + anchor_x, init_y - body.leg_h * 3 / 2 - LEG_DOWN), angle=side * 0.05,
                    fixtures=lower_fd)
                lower.color1, lower.color2 = colors
                lower.ground_contact = False
                self.legs.append(lower)
                self.joints.append(self.world.CreateJoint(b2.revoluteJointDef(
                    bodyA=upper, bodyB=lower, localAnchorA=(0, -body.leg_h / 2),
                    localAnchorB=(0, body.leg_h / 2),
                    enableMotor=True, enableLimit=True, maxMotorTorque=body.motors_torque, motorSpeed=1,
                    lowerAngle=-1.6, upperAngle=-0.1)))


# ---- the spec ---------------------------------------------------------------------------------------


@dataclass
class BipedalSpec(EnvSpec):
    """teachDeepRL's parametric BipedalWalker (``envs.bipedal``): ``body`` one of default, short,
    quadrupedal; ``track`` one of stumps (level ``[stump_height_mean, spacing]``), hexagons (12 offsets).

    ``level_low``/``level_high`` are the level box: the default level distribution (uniform), the bounds a
    level given at reset must respect, and what a teacher is built over: ``level_bounds()`` gives them as
    vectors (use it rather than the raw fields, which may hold one number for every parameter). They
    default to the Stump Tracks box [0, 3] x [0, 6]; ``track=hexagons`` needs 12 numbers each or one for
    all (reference box: ``env.level_low=[0] env.level_high=[4]``).
    Episodes are truncated after ``max_episode_steps`` (2000 when unset, as the reference).
    """

    MASTERY_RETURN: ClassVar[float] = MASTERY_RETURN
    step_info_keys: ClassVar[tuple[str, ...]] = ("level",)

    body: str = "default"
    track: str = "stumps"
    level_low: list[float] = field(default_factory=lambda: list(TRACK_BOUNDS["stumps"][0]))
    level_high: list[float] = field(default_factory=lambda: list(TRACK_BOUNDS["stumps"][1]))

    def validate(self) -> None:
        if self.body not in BODY_SHAPES:
            raise _choices("body", self.body, BODIES)
        check_level_bounds(self.track, self.level_low, self.level_high)

    def level_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the level box as float64 vectors (what a teacher is constructed with)."""
        return check_level_bounds(self.track, self.level_low, self.level_high)

    def mastery_return(self) -> float:
        return self.MASTERY_RETURN

    def score_range(self) -> tuple[float, float]:
        return SCORE_RANGE

    def test_levels(self, n: int = TEST_SET_SIZE) -> np.ndarray:
        """The fixed test set: ``n`` levels uniform in the box from ``TEST_SET_SEED``, shape (n, dims)."""
        if n < 1:
            raise ValueError(f"test_levels needs n >= 1, got {n}")
        return uniform_levels(*self.level_bounds(), n, TEST_SET_SEED)

    def gym_id(self) -> str:
        return "openrl/ParametricBipedal-v0"

    def make_kwargs(self) -> dict[str, Any]:
        return {"body": self.body, "track": self.track, "level_low": [float(v) for v in self.level_low],
                "level_high": [float(v) for v in self.level_high]}

    def describe(self) -> str:
        return f"bipedal-{self.track}" + ("" if self.body == "default" else f"-{self.body}")
