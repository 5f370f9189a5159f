"""The run directory: where a run's config, logs, checkpoints and evaluations live.

Layout::

    DIR/config.yaml        the resolved config of the run (updated on a forced resume)
    DIR/overrides.yaml     the command-line overrides, in order, of every invocation
    DIR/tb/                TensorBoard events (train/, eval/ namespaces), x axis = env steps
    DIR/scalars.csv        the same scalars as CSV (step, tag, value, wall_time)
    DIR/checkpoints/       step_<N>.pt, newest ``checkpoint.keep`` kept
    DIR/eval/              rl-eval results (JSON, CSV, PNG)

``prepare_run_dir`` decides between a fresh run and a resume *before* anything is written, so a bad
invocation never touches an existing directory.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from runners.checkpoint import latest_checkpoint
from runners.config import ConfigError, config_differences

CONFIG_NAME = "config.yaml"
OVERRIDES_NAME = "overrides.yaml"


@dataclass
class RunDir:
    path: Path
    resume_from: Path | None  # checkpoint to resume from, None for a fresh run


def default_run_dir(cfg: DictConfig, describe_env: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{cfg.agent.name}_{describe_env}_seed{cfg.seed}_{stamp}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def prepare_run_dir(cfg: DictConfig, path: Path) -> RunDir:
    """Validate that ``path`` can hold this run; return whether and from where to resume."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run_dir {path} exists and is not a directory")
    config_file = path / CONFIG_NAME
    if not config_file.exists():
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"run_dir {path} is not empty and holds no run (no {CONFIG_NAME}); refusing to write there")
        return RunDir(path, None)
    if cfg.resume == "never":
        raise ConfigError(f"run_dir {path} already holds a run and resume=never; choose another run_dir")
    try:
        old = OmegaConf.load(config_file)
    except Exception as exc:
        raise ConfigError(f"run_dir {path}: cannot read {CONFIG_NAME} ({exc})") from None
    diffs = config_differences(old, cfg)
    if diffs and cfg.resume != "force":
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise ConfigError(
            f"run_dir {path} holds a different experiment ({shown}); use another run_dir, or resume=force"
        )
    return RunDir(path, latest_checkpoint(path))


def write_config(run: RunDir, cfg: DictConfig, overrides: list[str]) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    tmp = run.path / f".{CONFIG_NAME}.tmp"
    tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tmp.replace(run.path / CONFIG_NAME)
    history_file = run.path / OVERRIDES_NAME
    history = yaml.safe_load(history_file.read_text()) if history_file.exists() else []
    history.append({"time": dt.datetime.now().isoformat(timespec="seconds"), "overrides": list(overrides)})
    history_file.write_text(yaml.safe_dump(history, sort_keys=False))


def load_run_config(path: Path) -> DictConfig:
    config_file = Path(path) / CONFIG_NAME
    if not config_file.exists():
        raise ConfigError(f"run_dir {path} holds no run (missing {CONFIG_NAME})")
    return OmegaConf.load(config_file)
