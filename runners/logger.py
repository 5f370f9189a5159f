"""Scalars to TensorBoard and to a CSV, both keyed on environment steps.

Tags are namespaced (``train/...``, ``eval/...``). On resume the logger drops whatever a crashed run
wrote after the checkpoint it resumes from, so the step axis continues without duplicates: TensorBoard
through ``purge_step``, the CSV by rewriting it without those rows. Rows at the checkpoint's own step
are kept: the training loop logs (and flushes) a step before it checkpoints it.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

CSV_NAME = "scalars.csv"
CSV_FIELDS = ("step", "tag", "value", "wall_time")


class Logger:
    def __init__(self, run_dir: Path, start_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / CSV_NAME
        if start_step > 0 and self.csv_path.exists():
            _truncate_csv(self.csv_path, start_step)
        self.writer = SummaryWriter(
            log_dir=str(self.run_dir / "tb"), purge_step=start_step + 1 if start_step > 0 else None
        )
        new_file = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._csv_file)
        if new_file:
            self._csv.writerow(CSV_FIELDS)

    def log(self, scalars: Mapping[str, float], step: int, prefix: str = "") -> None:
        now = time.time()
        for key, value in scalars.items():
            value = float(value)
            if not math.isfinite(value) and not math.isnan(value):
                continue
            tag = f"{prefix}/{key}" if prefix else key
            self.writer.add_scalar(tag, value, global_step=step, walltime=now)
            self._csv.writerow((step, tag, repr(value), f"{now:.3f}"))

    def add_text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, text)

    def flush(self) -> None:
        self.writer.flush()
        self._csv_file.flush()

    def close(self) -> None:
        self.writer.close()
        self._csv_file.close()


def _truncate_csv(path: Path, start_step: int) -> None:
    """Keep only rows logged up to ``start_step``; written to a temporary file then swapped in."""
    tmp = path.with_suffix(".tmp")
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        reader = csv.reader(src)
        writer = csv.writer(dst)
        writer.writerow(next(reader, CSV_FIELDS))
        for row in reader:
            if row and int(row[0]) <= start_step:
                writer.writerow(row)
    os.replace(tmp, path)


def read_scalars(run_dir: Path) -> list[dict]:
    """The CSV as a list of rows (``step`` int, ``value`` float), for tests and analysis scripts."""
    with open(Path(run_dir) / CSV_NAME, newline="") as f:
        return [
            {"step": int(r["step"]), "tag": r["tag"], "value": float(r["value"]), "wall_time": float(r["wall_time"])}
            for r in csv.DictReader(f)
        ]
