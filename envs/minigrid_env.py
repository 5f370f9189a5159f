"""Any MiniGrid (or BabyAI) id with a flat Box observation and ``info["xy"]``.

``openrl/MiniGrid-v0`` builds ``gym.make(minigrid_id)`` and applies one of MiniGrid's observation wrappers:

* ``image``: the agent's partial egocentric view, 7x7x3 uint8 (ImgObsWrapper);
* ``flat``:  that view flattened with a one-hot encoding of the mission string (FlatObsWrapper);
* ``full``:  the whole grid, W x H x 3 uint8 (FullyObsWrapper + ImgObsWrapper).

``info["xy"]`` is the agent's grid cell ``(column, row)`` as float64 (rows count downwards, as MiniGrid's
own ``agent_pos``); coverage is counted in these cells. Actions are MiniGrid's Discrete(7).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym

from envs.base import EnvSpec
from envs.wrappers import AddXY

OBS_MODES = ("image", "flat", "full")
# Named in the error message for an unknown id.
WELL_KNOWN_IDS = ("MiniGrid-Empty-8x8-v0", "MiniGrid-FourRooms-v0", "MiniGrid-DoorKey-8x8-v0",
                  "MiniGrid-KeyCorridorS3R3-v0", "MiniGrid-MultiRoom-N6-v0", "MiniGrid-SimpleCrossingS9N1-v0",
                  "MiniGrid-LavaCrossingS9N1-v0", "MiniGrid-ObstructedMaze-1Dlhb-v0")


def minigrid_ids() -> list[str]:
    """Every id registered by the minigrid package (MiniGrid-* and BabyAI-*), sorted."""
    import minigrid  # noqa: F401  (registers its ids)

    return sorted(env_id for env_id, spec in gym.registry.items()
                  if isinstance(spec.entry_point, str) and spec.entry_point.startswith("minigrid."))


def _agent_xy(env: gym.Env, info: dict[str, Any]) -> tuple[int, int]:
    return env.agent_pos


def make_minigrid(minigrid_id: str = "MiniGrid-FourRooms-v0", obs: str = "image", **kwargs: Any) -> gym.Env:
    """``gym.make(minigrid_id, **kwargs)`` with the ``obs`` observation wrapper and ``info["xy"]``."""
    from minigrid.wrappers import FlatObsWrapper, FullyObsWrapper, ImgObsWrapper

    if obs not in OBS_MODES:
        raise ValueError(f"unknown MiniGrid obs {obs!r}; choose one of: {', '.join(OBS_MODES)}")
    env = gym.make(minigrid_id, **kwargs)
    if obs == "image":
        env = ImgObsWrapper(env)
    elif obs == "flat":
        env = FlatObsWrapper(env)
    else:
        env = ImgObsWrapper(FullyObsWrapper(env))
    return AddXY(env, _agent_xy)


@dataclass
class MiniGridSpec(EnvSpec):
    """A MiniGrid/BabyAI task by its Gymnasium ``id``; ``obs`` one of image, flat, full.

    ``max_episode_steps``, when set, also becomes the MiniGrid env's own ``max_steps`` (MiniGrid truncates
    episodes itself, so a longer Gymnasium limit alone would have no effect).
    """

    id: str = "MiniGrid-FourRooms-v0"
    obs: str = "image"

    step_info_keys: ClassVar[tuple[str, ...]] = ("xy",)

    def validate(self) -> None:
        ids = minigrid_ids()
        if self.id not in ids:
            close = difflib.get_close_matches(self.id, ids, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            examples = [i for i in WELL_KNOWN_IDS if i in ids]
            raise ValueError(f"unknown MiniGrid id {self.id!r}{hint}; valid ids include: {', '.join(examples)}"
                             f" ... ({len(ids)} in all, see minigrid.farama.org)")
        if self.obs not in OBS_MODES:
            raise ValueError(f"unknown MiniGrid obs {self.obs!r}; choose one of: {', '.join(OBS_MODES)}")

    def gym_id(self) -> str:
        return "openrl/MiniGrid-v0"

    def make_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"minigrid_id": self.id, "obs": self.obs}
        if self.max_episode_steps is not None:
            kwargs["max_steps"] = self.max_episode_steps
        return kwargs

    def describe(self) -> str:
        name = self.id.removeprefix("MiniGrid-").rsplit("-v", 1)[0]
        return f"minigrid-{name}"
