"""Helpers shared by test modules (importable because pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import io
from typing import Any

import torch


def saved_and_loaded(state: Any) -> Any:
    """What a checkpoint gives back: ``torch.save``, then ``torch.load`` with ``weights_only=True``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)
