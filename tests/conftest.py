"""Test-wide settings: one torch thread (CI has two cores), headless MuJoCo rendering, loopback-only Ray."""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch

from envs.headless import default_to_egl

default_to_egl()

torch.set_num_threads(1)
