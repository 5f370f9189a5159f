"""``rl-sweep``: a Ray Tune sweep over any ``rl-run`` experiment, on this machine or on a Ray cluster.

    rl-sweep agent=metra env=pointmaze seed=0,1,2 agent.skill_dim=2,4 steps=20000

Design.

* **Sweep specification.** The command line is ``rl-run``'s Hydra overrides, parsed by Hydra's own override
  parser. A comma list (``seed=0,1,2``) or ``range(a,b)`` is a grid axis; ``choice(a,b)`` is a grid axis
  under ``sweep.search=grid`` and a categorical draw under ``sweep.search=random``; ``interval(a,b)``
  (``tag(log,interval(a,b))`` for a log scale) is a draw and needs ``sweep.search=random``. Random search
  draws ``sweep.num_samples`` configurations of the random axes with Tune's samplers (seeded by
  ``sweep.sample_seed``) and runs each of them on every point of the grid axes, so a sampled configuration
  is run with every seed. The trial list is therefore fixed before Tune starts: Tune gets it as one
  ``grid_search`` and the same command always means the same trials.
* **Options.** ``sweep.*`` keys are rl-sweep's own (:class:`SweepOptions`, a typed dataclass: a typo or a
  badly typed value is an error naming the valid keys) and ``ray.address`` / ``ray.num_cpus`` say where the
  sweep runs; both are stripped before each trial's config is composed with ``runners.config.compose_config``.
  ``run_dir`` is chosen by rl-sweep. Every trial's config is composed (so checked) before anything starts:
  all of them for small sweeps, one per value of each axis (crossed with the agent/env choices) for large.
* **Where things go.** The sweep directory is ``<sweep.storage>/<sweep.name>``; the default name is
  ``<agent>_<env>_<hash>`` with the hash over the experiment's overrides (not over resources or
  concurrency), so rerunning the same command finds the same sweep. It holds Tune's experiment state and
  trial directories, ``sweep.json`` (the trial list), ``runs/<trial>/`` (one ordinary rl-run run directory
  per trial, its name the trial's index and values), ``trials/<trial>.json`` and ``summary/``.
* **Trials.** Each trial calls ``runners.train.train`` with its composed config, as ``rl-run`` does, with a
  :class:`TrainHooks` subclass that reports the latest train and eval scalars to Tune at every log,
  evaluation and checkpoint, and a Tune checkpoint at every checkpoint of the run. A trial uses as many
  torch threads as CPUs it reserved, and ``device=auto`` means the CPU unless Ray gave the trial a GPU
  (Ray does not hide GPUs from trials that asked for none).
* **Restoring a trial: by its run directory.** A trial's run directory lives under the sweep's storage (a
  path every node can reach: a local disk on one machine, a shared file system such as NFS on a cluster),
  and ``train`` already resumes a run directory from its latest ``checkpoints/step_<N>.pt``. So a trial
  whose worker died is restarted by Tune (``FailureConfig(max_failures)``) and simply continues its run
  directory: the step axis, TensorBoard and ``scalars.csv`` go on from the checkpoint. The Tune checkpoint
  of a trial is a pointer (``checkpoint.json``: step and file), not a second copy of the agent and its
  replay data; on restart the trial checks that its run directory holds at least that checkpoint, which
  catches a storage path that is not shared between nodes. Object-store URIs (``s3://``) are refused for
  ``sweep.storage``, as run directories are written in place. Each trial keeps a record,
  ``trials/<trial>.json``: every attempt (process id, node, the step it started from) and, once it has
  finished, its final metrics. A finished trial that is started again (Tune saves its experiment state every
  few seconds, so an interrupted sweep may not have recorded the end of a trial) reports those without
  training.
* **Restoring a sweep.** Rerunning the same command finds Tune's state in the sweep directory
  (``Tuner.can_restore``) and continues it with ``Tuner.restore`` (unfinished and errored trials resume,
  finished ones are not rerun). ``sweep.json`` must match, so a changed sweep under an explicit
  ``sweep.name`` is refused rather than mixed in.
* **Ray.** Without an address Ray starts in-process on 127.0.0.1 with no dashboard (the helper of
  ``runners.ray_rollout``); ``ray.address=auto`` or ``host:port`` joins a running cluster. Trials ask for
  ``sweep.cpus_per_trial`` CPUs and ``sweep.gpus_per_trial`` GPUs (fractions allowed); asking for more than
  the machine or cluster has is an error before the sweep starts.
* **Summary** (``runners.sweep_summary``): configurations are grouped by the trial's axis values other than
  ``seed``, and the final value of each metric is summarised across the group's seeds (mean, standard
  deviation, 95% percentile-bootstrap interval), from each trial's ``scalars.csv``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Read by Ray when it is imported: an embedded Ray stays on 127.0.0.1 and sends no usage statistics.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tune saves its experiment state (trial statuses, checkpoints known) at most this often; a short period
# means an interrupted sweep forgets little. The state is a few kB per trial.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")

from runners.cli import _fail, _quiet_libraries
from runners.config import GROUPS, ConfigError, _suggest
from runners.train import TrainHooks

PROG = "rl-sweep"
SEARCHES = ("grid", "random")
SPEC_FILE = "sweep.json"
SPEC_VERSION = 1
VALIDATE_ALL_UP_TO = 24  # trials composed one by one up to this many; beyond, one per axis value
# Run keys rl-sweep owns: where each trial runs and whether it draws a progress bar.
RESERVED_KEYS = ("run_dir", "progress")
RAY_KEYS = ("ray.address", "ray.num_cpus")

USAGE = """usage: rl-sweep [KEY=VALUE ...] [KEY=A,B,C ...] [sweep.KEY=VALUE ...] [--summarise]

Run every combination of the swept values as a Ray Tune trial of rl-run's training, then summarise
across seeds. Takes rl-run's overrides; a comma list or range(a,b) is a grid axis, choice(a,b) a grid axis
(or a random draw with sweep.search=random), interval(a,b) / tag(log,interval(a,b)) a random draw.

  rl-sweep agent=sac env=pointmaze seed=0,1,2 agent.batch_size=64,256 steps=20000
  rl-sweep agent=sac seed=0,1 agent.lr='tag(log,interval(1e-4,1e-3))' sweep.search=random sweep.num_samples=8

Options (sweep.KEY=VALUE):
{options}
  ray.address=auto|HOST:PORT  run on an existing Ray cluster (default: Ray started here, loopback only)
  ray.num_cpus=N              CPUs of the embedded Ray (default: all cores)

Rerunning the same command resumes an interrupted sweep. --summarise writes the summary of the sweep the
command names (what has finished so far) without running anything.
"""


@dataclass
class SweepOptions:
    """``sweep.*`` options of rl-sweep (never part of a trial's config)."""

    search: str = "grid"  # grid | random
    num_samples: int | None = None  # random search: configurations drawn (default 8)
    sample_seed: int = 0  # random search: seed of the draws, so the same command draws the same trials
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU between trials
    max_concurrent: int | None = None  # default: as many as the resources allow
    max_failures: int = 2  # restarts of a failing trial (from its last checkpoint)
    name: str | None = None  # default: <agent>_<env>_<hash of the experiment's overrides>
    storage: str = "runs/sweeps"  # a path every node can reach (shared file system on a cluster)
    metrics: list[str] = field(default_factory=list)  # summary metrics; default: eval/* and train/recent_return


OPTION_HELP = {
    "search": "grid | random",
    "num_samples": "random search: configurations drawn, each run on every grid point (default 8)",
    "sample_seed": "random search: seed of the draws (default 0)",
    "cpus_per_trial": "CPUs reserved per trial (default 1; fractions allowed)",
    "gpus_per_trial": "GPUs per trial (default 0; fractions share a GPU)",
    "max_concurrent": "trials running at once (default: as resources allow)",
    "max_failures": "restarts of a failing trial from its last checkpoint (default 2)",
    "name": "sweep name (default <agent>_<env>_<hash of the overrides>)",
    "storage": "where sweeps go (default runs/sweeps; a shared path on a cluster)",
    "metrics": "summary metrics, e.g. [eval/return_mean] (default eval/* and train/recent_return)",
}


# ---- parsing ------------------------------------------------------------------------------------------


@dataclass
class Axis:
    """One swept key: grid values (override strings), or a random draw (choices, or an interval)."""

    key: str
    line: str  # the override as typed, for the sweep's identity
    grid: list[str] | None = None
    choices: list[str] | None = None
    interval: tuple[float, float, bool] | None = None  # low, high, log scale

    @property
    def random(self) -> bool:
        return self.grid is None


@dataclass
class SweepSpec:
    fixed: list[str]  # overrides every trial gets
    axes: list[Axis]
    options: SweepOptions
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    summarise: bool = False


def parse_args(argv: list[str]) -> SweepSpec:
    """Split the command line into fixed overrides, sweep axes, ``sweep.*`` and ``ray.*`` options."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException

    flags = [a for a in argv if a.startswith("-")]
    summarise = any(a in ("--summarise", "--summarize") for a in flags)
    unknown = [a for a in flags if a not in ("--summarise", "--summarize")]
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; overrides are KEY=VALUE (see rl-sweep --help)")
    args = [a for a in argv if not a.startswith("-")]
    parser = OverridesParser.create()
    fixed: list[str] = []
    axes: list[Axis] = []
    option_values: dict[str, Any] = {}
    ray_values: dict[str, Any] = {}
    seen: set[str] = set()
    for arg in args:
        try:
            ov = parser.parse_override(arg)
        except HydraException as exc:
            raise ConfigError(f"cannot parse {arg!r}: {str(exc).splitlines()[0]}") from None
        key = ov.key_or_group
        if key in seen:
            raise ConfigError(f"{key} is given twice; give one value, or a comma list to sweep it")
        seen.add(key)
        if ov.value() == "" and not ov.is_delete():
            raise ConfigError(f"{key}= has no value; give a value, or a comma list to sweep it ({key}=0,1,2)")
        if key.startswith("sweep."):
            if ov.is_sweep_override():
                raise ConfigError(f"{arg!r}: sweep.* options take one value, not a sweep")
            option_values[key.removeprefix("sweep.")] = ov.value()
            continue
        if key in RAY_KEYS:
            if ov.is_sweep_override():
                raise ConfigError(f"{arg!r}: {key} takes one value, not a sweep")
            ray_values[key] = ov.value()
            fixed.append(arg)  # composed with each trial for validation, stripped before it runs
            continue
        if key in RESERVED_KEYS:
            raise ConfigError(f"{key} is set by rl-sweep for each trial (runs go under sweep.storage/sweep.name)")
        if not ov.is_sweep_override():
            fixed.append(arg)
            continue
        value = ov.value()
        if isinstance(value, IntervalSweep):
            low, high = float(value.start), float(value.end)
            if not low < high:
                raise ConfigError(f"{arg!r}: interval needs low < high")
            log = "log" in value.tags
            if log and low <= 0:
                raise ConfigError(f"{arg!r}: a log-scale interval needs low > 0")
            axes.append(Axis(key, arg, interval=(low, high, log)))
            continue
        if not isinstance(value, ChoiceSweep | RangeSweep):
            raise ConfigError(f"{arg!r}: unsupported sweep (use a comma list, range(), choice() or interval())")
        values = list(ov.sweep_string_iterator())
        if not values or any(v == "" for v in values):
            raise ConfigError(f"{arg!r}: a sweep axis needs values, and none of them empty")
        if len(set(values)) != len(values):
            raise ConfigError(f"{arg!r}: repeated values")
        is_choice = isinstance(value, ChoiceSweep) and not value.simple_form
        if is_choice:
            axes.append(Axis(key, arg, choices=values))
        else:
            axes.append(Axis(key, arg, grid=values))
    options = parse_options(option_values)
    if options.search == "grid":
        for axis in axes:
            if axis.interval is not None:
                raise ConfigError(f"{axis.line!r}: interval() is a random draw; add sweep.search=random")
            if axis.choices is not None:  # choice() under grid search is one more grid axis
                axis.grid, axis.choices = axis.choices, None
    return SweepSpec(fixed, axes, options, ray_values.get("ray.address"), ray_values.get("ray.num_cpus"), summarise)


def parse_options(values: dict[str, Any]) -> SweepOptions:
    """``sweep.*`` values into the typed dataclass: unknown keys and bad types are one-line errors."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    valid = [f.name for f in dataclasses.fields(SweepOptions)]
    node = OmegaConf.structured(SweepOptions)
    for key, value in values.items():
        if key not in valid:
            raise ConfigError(f"unknown key 'sweep.{key}'{_suggest(key, valid)}; valid keys of sweep: {', '.join(valid)}")
        try:
            node[key] = value
        except OmegaConfBaseException as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(f"sweep.{key}: {msg}") from None
    opts: SweepOptions = OmegaConf.to_object(node)
    if opts.search not in SEARCHES:
        raise ConfigError(f"unknown sweep.search {opts.search!r}{_suggest(opts.search, list(SEARCHES))}; "
                          f"choose one of: {', '.join(SEARCHES)}")
    if opts.num_samples is not None:
        if opts.search != "random":
            raise ConfigError("sweep.num_samples is for sweep.search=random (a grid runs each point once)")
        if opts.num_samples < 1:
            raise ConfigError(f"sweep.num_samples must be >= 1, got {opts.num_samples}")
    if opts.cpus_per_trial <= 0:
        raise ConfigError(f"sweep.cpus_per_trial must be > 0, got {opts.cpus_per_trial}")
    if opts.gpus_per_trial < 0:
        raise ConfigError(f"sweep.gpus_per_trial must be >= 0, got {opts.gpus_per_trial}")
    if opts.gpus_per_trial > 1 and opts.gpus_per_trial != int(opts.gpus_per_trial):
        raise ConfigError(f"sweep.gpus_per_trial above 1 must be a whole number, got {opts.gpus_per_trial}")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise ConfigError(f"sweep.max_concurrent must be >= 1, got {opts.max_concurrent}")
    if opts.max_failures < 0:
        raise ConfigError(f"sweep.max_failures must be >= 0, got {opts.max_failures}")
    if opts.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", opts.name):
        raise ConfigError(f"sweep.name {opts.name!r}: use letters, digits and _ . = - only")
    if not opts.storage:
        raise ConfigError("sweep.storage is empty")
    if "://" in opts.storage and not opts.storage.startswith("file://"):
        # Run directories are written in place (see the module docstring): a bucket cannot hold them.
        raise ConfigError(f"sweep.storage {opts.storage!r}: give a file system path that every node can reach "
                          "(a shared file system on a cluster); object-store URIs are not supported")
    return opts


# ---- the trials ---------------------------------------------------------------------------------------


def expand(spec: SweepSpec) -> list[dict[str, str]]:
    """The sweep's trials, each a mapping axis key -> override value, in a fixed order."""
    import numpy as np
    from ray import tune

    grid_axes = [a for a in spec.axes if not a.random]
    random_axes = [a for a in spec.axes if a.random]
    grid_points = list(itertools.product(*[a.grid for a in grid_axes]))
    if not random_axes:
        draws: list[dict[str, str]] = [{}]
    else:
        rng = np.random.RandomState(spec.options.sample_seed)
        draws = []
        for _ in range(spec.options.num_samples or 8):
            draw = {}
            for axis in random_axes:
                if axis.choices is not None:
                    draw[axis.key] = axis.choices[int(rng.randint(len(axis.choices)))]
                else:
                    low, high, log = axis.interval
                    domain = tune.loguniform(low, high) if log else tune.uniform(low, high)
                    draw[axis.key] = f"{float(domain.sample(random_state=rng)):.6g}"
            draws.append(draw)
    points = []
    for draw in draws:
        for values in grid_points:
            point = {**draw, **{a.key: v for a, v in zip(grid_axes, values)}}
            points.append({a.key: point[a.key] for a in spec.axes})  # command-line order
    return points


def run_overrides(spec: SweepSpec) -> list[str]:
    """The overrides every trial gets: the fixed ones, without the sweep's ``ray.*`` keys."""
    return [o for o in spec.fixed if o.split("=", 1)[0] not in RAY_KEYS]


def run_keys(run_dir: Path) -> list[str]:
    """The run keys rl-sweep sets for a trial; the path is quoted (run names hold ``=`` and ``,``)."""
    quoted = str(run_dir).replace("'", "\\'")
    return [f"run_dir='{quoted}'", "progress=false"]


def trial_name(index: int, point: dict[str, str]) -> str:
    """A run directory name: the trial's index, then its values (readable, unique by the index)."""
    label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "run"
    label = re.sub(r"[^A-Za-z0-9_.=,-]+", "-", label)[:80]
    return f"{index:03d}_{label}"


def validate(spec: SweepSpec, points: list[dict[str, str]], path: Path) -> None:
    """Compose the trials' configs (all of them, or enough to try every value) so a bad one fails now."""
    from runners.config import compose_config

    if len(points) <= VALIDATE_ALL_UP_TO:
        checks = points
    else:
        # Group choices change which keys exist: cross them, then try every value of the other axes once.
        group_axes = [a for a in spec.axes if a.key in GROUPS and not a.random]
        other = [a for a in spec.axes if a not in group_axes]
        first = points[0]
        checks = []
        for groups in itertools.product(*[a.grid for a in group_axes]):
            base = {**first, **{a.key: v for a, v in zip(group_axes, groups)}}
            checks.append(base)
            for axis in other:
                values = axis.grid or axis.choices or [f"{axis.interval[0]:.6g}", f"{axis.interval[1]:.6g}"]
                checks += [{**base, axis.key: v} for v in values]
    done: set[tuple] = set()
    for point in checks:
        key = tuple(point.items())
        if key in done:
            continue
        done.add(key)
        index = points.index(point) if point in points else 0
        overrides = spec.fixed + [f"{k}={v}" for k, v in point.items()] + run_keys(path / "runs" / trial_name(index, point))
        try:
            cfg = compose_config(overrides)
        except ConfigError as exc:
            where = " ".join(f"{k}={v}" for k, v in point.items())
            raise ConfigError(f"{exc} (trial {where})" if where else str(exc)) from None
        if cfg.device == "cuda" and spec.options.gpus_per_trial == 0:
            raise ConfigError("device=cuda needs sweep.gpus_per_trial > 0: a trial gets a GPU only by asking for one")


def sweep_identity(spec: SweepSpec) -> dict[str, Any]:
    """What makes two sweeps the same experiment: the overrides and the search, not resources or names."""
    opts = spec.options
    return {
        "fixed": run_overrides(spec),
        "axes": [a.line for a in spec.axes],
        "search": opts.search,
        "num_samples": opts.num_samples,
        "sample_seed": opts.sample_seed,
    }


def sweep_dir(spec: SweepSpec) -> Path:
    opts = spec.options
    storage = opts.storage.removeprefix("file://")
    if opts.name:
        name = opts.name
    else:
        from runners.config import Config

        digest = hashlib.sha1(json.dumps(sweep_identity(spec), sort_keys=True).encode()).hexdigest()[:8]
        choices = {k: v for d in Config().defaults if isinstance(d, dict) for k, v in d.items()}
        choices.update(o.split("=", 1) for o in spec.fixed if o.split("=", 1)[0] in ("agent", "env"))
        for axis in spec.axes:  # a swept agent or env: all its values
            if axis.key in ("agent", "env"):
                choices[axis.key] = "+".join(axis.grid or axis.choices or [])
        name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", f"{choices['agent']}_{choices['env']}")[:60] + f"_{digest}"
    return Path(storage).expanduser().absolute() / name


def check_spec_file(path: Path, record: dict[str, Any]) -> None:
    """Refuse to continue a sweep directory that holds a different sweep."""
    file = path / SPEC_FILE
    if not file.exists():
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"sweep directory {path} is not empty and holds no {SPEC_FILE}; choose another sweep.name")
        return
    try:
        old = json.loads(file.read_text())
    except Exception as exc:
        raise ConfigError(f"sweep directory {path}: cannot read {SPEC_FILE} ({exc})") from None
    if old.get("identity") != record["identity"] or old.get("trials") != record["trials"]:
        raise ConfigError(f"sweep directory {path} holds a different sweep ({old.get('command', '?')}); "
                          "choose another sweep.name")


# ---- inside a trial -----------------------------------------------------------------------------------


def _json_float(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class TuneHooks(TrainHooks):
    """Reports the run's latest train and eval scalars to Tune at every log, evaluation and checkpoint, with a
    Tune checkpoint at every checkpoint of the run: a pointer (step, file) into the run directory."""

    def __init__(self, resumed_from: int) -> None:
        self.latest: dict[str, float] = {"step": resumed_from, "resumed_from": resumed_from}

    def _report(self, step: int, checkpoint: Path | None = None) -> None:
        from ray import tune

        self.latest["step"] = step
        if checkpoint is None:
            tune.report(dict(self.latest))
            return
        tmp = Path(tempfile.mkdtemp(prefix="rl-sweep-ckpt-"))
        try:
            (tmp / "checkpoint.json").write_text(json.dumps({"step": step, "file": checkpoint.name}))
            tune.report(dict(self.latest), checkpoint=tune.Checkpoint.from_directory(tmp))
        finally:  # report has copied it to the trial's storage
            shutil.rmtree(tmp, ignore_errors=True)

    def on_log(self, step: int, scalars: dict[str, float]) -> None:
        self.latest.update({f"train/{k}": float(v) for k, v in scalars.items()})
        self._report(step)

    def on_eval(self, step: int, results: dict[str, Any]) -> None:
        for suite, result in results.items():
            prefix = "eval" if suite == "returns" else f"eval/{suite}"
            for k, v in result.get("scalars", {}).items():
                if (f := _json_float(v)) is not None:
                    self.latest[f"{prefix}/{k}"] = f
        self._report(step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._report(step, path)


def _checkpoint_step(path: Path | None) -> int:
    return int(path.stem.removeprefix("step_")) if path is not None else 0


def run_trial(config: dict[str, Any], *, points: list[dict[str, str]], overrides: list[str], sweep_path: str,
              cpus: float, cwd: str) -> None:
    """The Tune trainable: one rl-run training in the trial's run directory, resumed if it has a checkpoint."""
    import ray
    import torch
    from ray import tune

    from runners.checkpoint import latest_checkpoint
    from runners.config import compose_config
    from runners.train import train

    torch.set_num_threads(max(1, int(cpus)))  # the trial's share of the node, not all of its cores
    if os.path.isdir(cwd):  # Tune starts trials in a directory of its own: relative paths mean what they did for rl-run
        os.chdir(cwd)
    index = int(config["trial"])
    point = points[index]
    run_dir = Path(sweep_path) / "runs" / trial_name(index, point)
    args = overrides + [f"{k}={v}" for k, v in point.items()]
    cfg = compose_config(args + run_keys(run_dir))
    if cfg.device == "auto" and not ray.get_runtime_context().get_accelerator_ids().get("GPU"):
        # Ray leaves CUDA_VISIBLE_DEVICES alone for a trial without GPUs, so "auto" would take one unasked.
        cfg.device = "cpu"
    # Beside the run directory, not in it: train refuses a non-empty directory that holds no run yet.
    record_file = Path(sweep_path) / "trials" / f"{trial_name(index, point)}.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {"index": index, "point": point,
                                                                               "attempts": []}
    latest = latest_checkpoint(run_dir)
    step = _checkpoint_step(latest)
    tune_ckpt = tune.get_checkpoint()
    if tune_ckpt is not None:
        with tune_ckpt.as_directory() as d:
            known = json.loads((Path(d) / "checkpoint.json").read_text())
        if step < int(known["step"]):
            raise RuntimeError(f"Tune recorded checkpoint step {known['step']} of {run_dir}, but that run directory "
                               f"holds {'step ' + str(step) if latest else 'none'} on node {socket.gethostname()}: "
                               "is sweep.storage a path shared by every node?")
    if record.get("finished") and step >= cfg.steps:
        # Finished in an earlier attempt whose end Tune did not record: report, do not train again.
        tune.report(record["final"])
        return
    record["attempts"].append({"pid": os.getpid(), "node": ray.util.get_node_ip_address(),
                               "host": socket.gethostname(), "start_step": step, "time": time.time()})
    record.pop("finished", None)
    _write_json(record_file, record)
    hooks = TuneHooks(step)
    train(cfg, args, hooks=hooks)
    record.update(finished=True, final=hooks.latest)
    _write_json(record_file, record)
    tune.report(dict(hooks.latest))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


# ---- the driver ---------------------------------------------------------------------------------------


def _check_resources(opts: SweepOptions, cpus: float, gpus: float, where: str) -> None:
    if opts.gpus_per_trial > gpus:
        raise ConfigError(f"sweep.gpus_per_trial={opts.gpus_per_trial:g} but {where} has {gpus:g} GPUs")
    if opts.cpus_per_trial > cpus:
        raise ConfigError(f"sweep.cpus_per_trial={opts.cpus_per_trial:g} but {where} has {cpus:g} CPUs")


def run_sweep(spec: SweepSpec, points: list[dict[str, str]], path: Path, record: dict[str, Any]) -> list[Any]:
    """Start (or restore) the Tune experiment and wait for it; returns Tune's results."""
    import ray
    from ray import tune

    from runners.ray_rollout import _acquire_ray, _release_ray

    opts = spec.options
    _acquire_ray(spec.ray_address, spec.ray_num_cpus)
    try:
        if spec.ray_address is not None:  # an embedded Ray was checked before it started (main)
            total = ray.cluster_resources()
            _check_resources(opts, total.get("CPU", 0), total.get("GPU", 0), "the Ray cluster")
        if not (path / SPEC_FILE).exists():
            _write_json(path / SPEC_FILE, record)
        keys = [a.key for a in spec.axes]
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, points=points, overrides=run_overrides(spec), sweep_path=str(path),
                                 cpus=opts.cpus_per_trial, cwd=os.getcwd()),
            {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial},
        )
        # One grid axis over the trial list; the values are repeated as columns for Tune's tables.
        param_space = {"trial": tune.grid_search(list(range(len(points)))),
                       **{k: tune.sample_from(lambda config, k=k: points[config["trial"]][k]) for k in keys}}
        if tune.Tuner.can_restore(str(path)):
            print(f"{PROG}: resuming the sweep in {path}", file=sys.stderr)
            # The param space again: a driver killed before Tune saved its state with every trial in it makes
            # the restored search create the missing trials, which need the grid to have a "trial".
            tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=param_space)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=opts.max_concurrent,
                    trial_name_creator=lambda t: trial_name(t.config["trial"], points[t.config["trial"]]),
                    trial_dirname_creator=lambda t: trial_name(t.config["trial"], points[t.config["trial"]]),
                ),
                run_config=tune.RunConfig(
                    name=path.name, storage_path=str(path.parent),
                    failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                    # Pointers only (see run_trial); the run directory keeps checkpoint.keep checkpoints.
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    verbose=1,  # sweep status only; each trial's own output is in its run directory
                ),
            )
        return list(tuner.fit())
    finally:
        _release_ray()


def main(argv: list[str] | None = None) -> int:
    """``rl-sweep``: validate the sweep, run it on Ray Tune (or resume it), then summarise it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    if any(a in ("-h", "--help") for a in argv):
        width = max(len(k) for k in OPTION_HELP) + len("sweep.=VALUE") + 2
        options = "\n".join(f"  {f'sweep.{k}=VALUE':<{width}}{v}" for k, v in OPTION_HELP.items())
        print(USAGE.format(options=options))
        return 0
    try:
        spec = parse_args(argv)
        points = expand(spec)
        path = sweep_dir(spec)
        validate(spec, points, path)
        record = {"version": SPEC_VERSION, "command": " ".join(["rl-sweep", *argv]), "identity": sweep_identity(spec),
                  "trials": [{"index": i, "point": p, "run_dir": f"runs/{trial_name(i, p)}"} for i, p in enumerate(points)]}
        check_spec_file(path, record)
    except ConfigError as exc:
        return _fail(PROG, str(exc))

    from runners.sweep_summary import summarise

    if spec.summarise:
        if not (path / SPEC_FILE).exists():
            return _fail(PROG, f"no sweep in {path} yet; run the same command without --summarise first")
        return _print_summary(summarise(path, spec.options.metrics))

    if spec.ray_address is None:  # the embedded Ray gets this machine: check before anything starts
        import torch

        cpus = spec.ray_num_cpus or os.cpu_count() or 1
        try:
            _check_resources(spec.options, cpus, torch.cuda.device_count(), "this machine")
        except ConfigError as exc:
            return _fail(PROG, str(exc))
    print(f"{PROG}: {len(points)} trial{'s' if len(points) != 1 else ''} in {path}", file=sys.stderr)
    try:
        results = run_sweep(spec, points, path, record)
    except ConfigError as exc:
        return _fail(PROG, str(exc))
    except ConnectionError as exc:  # ray.address names no running cluster
        return _fail(PROG, f"ray.address={spec.ray_address}: {str(exc).splitlines()[0]}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    failed = [r for r in results if r.error is not None]
    status = _print_summary(summarise(path, spec.options.metrics))
    for r in failed:
        lines = [line.strip() for line in str(r.error).splitlines() if line.strip()]
        print(f"{PROG}: trial {Path(r.path).name} failed: {lines[-1] if lines else type(r.error).__name__}",
              file=sys.stderr)
    if failed:
        return 1
    # Tune turns a Ctrl-C into a clean stop with its state saved: the trials that did not finish say so.
    unfinished = [t for t in record["trials"] if not _trial_finished(path, t)]
    if unfinished:
        print(f"{PROG}: {len(unfinished)} of {len(points)} trials did not finish (interrupted); "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    return status


def _trial_finished(path: Path, trial: dict[str, Any]) -> bool:
    file = path / "trials" / f"{Path(trial['run_dir']).name}.json"
    return file.exists() and bool(json.loads(file.read_text()).get("finished"))


def _print_summary(out: dict[str, Any]) -> int:
    print(out["markdown"])
    print(f"summary: {out['markdown_path']} (table), {out['csv_path']} (CSV), "
          f"{len(out['plots'])} plot(s) in {out['markdown_path'].parent}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

