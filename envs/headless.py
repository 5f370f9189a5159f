"""Headless OpenGL for MuJoCo rendering (dm_control pixels, Gymnasium MuJoCo ``rgb_array``)."""

from __future__ import annotations

import ctypes.util
import os


def default_to_egl() -> None:
    """Choose ``MUJOCO_GL=egl`` when the user chose nothing, there is no display and libEGL exists.

    dm_control reads ``MUJOCO_GL`` once, when it is first imported, and left to itself picks GLFW, which
    needs a display. Setting ``egl`` on a machine without libEGL would instead make that import fail
    (even for state-only envs), hence the library check. Call this before importing dm_control.
    """
    if "MUJOCO_GL" in os.environ or os.environ.get("DISPLAY"):
        return
    if ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"
