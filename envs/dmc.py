"""dm_control suite tasks as Gymnasium envs (our own thin wrapper, not Shimmy).

Why our own: the suite's agents want one flat float32 vector (not a dict), actions in [-1, 1] for every
domain (quadruped's actuators have asymmetric ranges), URLB-style pixels and action repeat, the
quadruped stand/jump tasks URLB adds (see ``envs.dmc_tasks``), and ``info["xy"]`` for coverage metrics.

Conventions of :class:`DMCEnv`:

* State observations: every entry of the task's observation dict flattened and concatenated in the
  order the task defines them (dm_control's ``observation_spec()`` order, the order URLB uses), float32.
  ``env.unwrapped.obs_keys`` lists that order.
* Pixel observations (``pixels=True``): ``image_size`` x ``image_size`` RGB uint8 frames from
  ``physics.render`` stacked along the channel axis, oldest first: shape (H, W, 3 * frame_stack). The
  camera is quadruped's 2 (as URLB) and 0 for every other domain unless ``camera_id`` is given.
  Needs an OpenGL back-end (``MUJOCO_GL=egl`` and libEGL on a headless machine).
* Actions: Box [-1, 1]^n, mapped affinely onto dm_control's action bounds; out-of-range values are clipped.
* ``info["xy"]``: float64 (2,) world x-y of the ``torso`` body (the first body of the model if it has no
  torso). For the planar walker and cheetah the model lives in the x-z plane, so y is always 0: only x
  carries information, as for Gymnasium's HalfCheetah.
* Episodes never terminate in the locomotion domains: dm_control's time limit (1000 control steps,
  i.e. ``ceil(1000 / action_repeat)`` env steps) is reported as ``truncated``. A task that ends an
  episode with discount 0 reports ``terminated``.
* Seeding: ``reset(seed=s)`` reseeds the task's random state (which draws the initial pose), so a seed
  and an action sequence give the same rollout.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import EnvSpec
from envs.headless import default_to_egl

# URLB renders quadruped from camera 2 (a tracking camera that keeps the whole body in view).
DEFAULT_CAMERA = {"quadruped": 2}


def _suite():
    """dm_control's suite, imported on first use: it costs about a second and must see MUJOCO_GL first."""
    default_to_egl()
    from dm_control import suite

    return suite


def _extra_tasks():
    default_to_egl()
    from envs.dmc_tasks import EXTRA_TASKS

    return EXTRA_TASKS


def available_tasks() -> dict[str, list[str]]:
    """Every (domain -> tasks) this wrapper can build: dm_control's suite plus ``envs.dmc_tasks``."""
    tasks = {domain: list(names) for domain, names in _suite().TASKS_BY_DOMAIN.items()}
    for domain, task in _extra_tasks():
        tasks.setdefault(domain, []).append(task)
    return {domain: sorted(names) for domain, names in sorted(tasks.items())}


def check_task(domain: str, task: str) -> None:
    """Raise ValueError, one line naming the valid choices, for a domain or task we cannot build."""
    tasks = available_tasks()
    if domain not in tasks:
        raise ValueError(f"unknown dm_control domain {domain!r}; choose one of: {', '.join(tasks)}")
    if task not in tasks[domain]:
        raise ValueError(f"unknown task {task!r} for domain {domain}; choose one of: {', '.join(tasks[domain])}")


class DMCEnv(gym.Env):
    """One dm_control task; see the module docstring for the observation/action/info conventions."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, domain: str = "quadruped", task: str = "walk", pixels: bool = False,
                 image_size: int = 64, frame_stack: int = 3, action_repeat: int = 1,
                 camera_id: int | None = None, render_mode: str | None = None, render_size: int = 256):
        check_task(domain, task)
        extra = _extra_tasks().get((domain, task))
        self._env = extra() if extra is not None else _suite().load(domain, task)
        self._physics = self._env.physics
        self.pixels, self.image_size, self.frame_stack = pixels, image_size, frame_stack
        self.action_repeat = action_repeat
        self.camera_id = DEFAULT_CAMERA.get(domain, 0) if camera_id is None else camera_id
        self.render_mode, self.render_size = render_mode, render_size
        self.metadata = {**self.metadata, "render_fps": round(1.0 / (self._env.control_timestep() * action_repeat))}

        spec = self._env.action_spec()
        self._act_low = spec.minimum.astype(np.float64)
        self._act_half_range = (spec.maximum - spec.minimum).astype(np.float64) / 2.0
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)

        self.obs_keys = list(self._env.observation_spec())
        if pixels:
            shape = (image_size, image_size, 3 * frame_stack)
            self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
            self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        else:
            dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)

        body_names = [self._physics.model.id2name(i, "body") for i in range(self._physics.model.nbody)]
        self._xy_body = body_names.index("torso") if "torso" in body_names else 1

    def _observation(self, time_step, first: bool = False) -> np.ndarray:
        if not self.pixels:
            parts = [np.asarray(time_step.observation[k], dtype=np.float32).ravel() for k in self.obs_keys]
            return np.concatenate(parts)
        frame = self._physics.render(self.image_size, self.image_size, camera_id=self.camera_id)
        # An episode's first observation repeats its first frame to fill the stack (as URLB does).
        self._frames.extend([frame] * (self.frame_stack if first else 1))
        return np.concatenate(self._frames, axis=-1)

    def _info(self) -> dict[str, Any]:
        return {"xy": self._physics.data.xpos[self._xy_body, :2].copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            # Through np_random so that any integer seed works (RandomState takes only 32-bit seeds).
            self._env.task.random.seed(int(self.np_random.integers(2**31)))
        return self._observation(self._env.reset(), first=True), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        dm_action = self._act_low + (action + 1.0) * self._act_half_range
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(dm_action)
            reward += time_step.reward or 0.0
            if time_step.last():
                break
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        truncated = bool(time_step.last() and not terminated)
        return self._observation(time_step), float(reward), terminated, truncated, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self._physics.render(self.render_size, self.render_size, camera_id=self.camera_id)
        return None

    def close(self):
        self._physics.free()


# Downstream reward tasks per domain: the tasks of the same dynamics a skill agent is judged on zero-shot.
DOWNSTREAM_TASKS = {"quadruped": ("walk", "run", "stand", "jump"), "walker": ("stand", "walk", "run"), "cheetah": ("run",)}


@dataclass
class DMCSpec(EnvSpec):
    """A dm_control task (``domain``-``task``), state or pixel observations.

    ``env.pixels=true`` switches to stacked ``image_size``-pixel RGB frames (needs EGL without a display);
    ``env.action_repeat=k`` repeats each action k control steps and sums the rewards (episodes get
    ``ceil(1000 / k)`` steps). ``camera_id`` None: quadruped 2, other domains 0.
    """

    domain: str = "quadruped"
    task: str = "walk"
    pixels: bool = False
    image_size: int = 64
    frame_stack: int = 3
    action_repeat: int = 1
    camera_id: int | None = None

    step_info_keys: ClassVar[tuple[str, ...]] = ("xy",)

    def validate(self) -> None:
        check_task(self.domain, self.task)
        for field in ("image_size", "frame_stack", "action_repeat"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")

    def gym_id(self) -> str:
        return "openrl/DMC-v0"

    def make_kwargs(self) -> dict[str, Any]:
        return {"domain": self.domain, "task": self.task, "pixels": self.pixels, "image_size": self.image_size,
                "frame_stack": self.frame_stack, "action_repeat": self.action_repeat, "camera_id": self.camera_id}

    def coverage_axes(self) -> tuple[int, ...]:
        """cheetah is a planar runner: coverage counts x bins only."""
        return (0,) if self.domain == "cheetah" else (0, 1)

    def reward_tasks(self) -> dict[str, EnvSpec]:
        """The domain's ``DOWNSTREAM_TASKS`` (quadruped walk/run/stand/jump, walker stand/walk/run, cheetah run)."""
        return {task: dataclasses.replace(self, task=task) for task in DOWNSTREAM_TASKS.get(self.domain, ())}

    def describe(self) -> str:
        return f"{self.domain}-{self.task}" + ("-pixels" if self.pixels else "")
