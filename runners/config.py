"""Typed Hydra configuration of a run.

The root config has four groups, each option a typed dataclass registered in Hydra's ConfigStore:

* ``agent``: one option per entry of ``agents.AGENTS`` (its config dataclass);
* ``env``: one option per entry of ``envs.ENVS`` (its ``EnvSpec``);
* ``runner``: how rollouts are collected (back-end, number of envs and workers);
* ``curriculum``: the teacher that picks levels (``none`` until a teacher is configured);

and a fifth, ``preset``, of per-(agent, env) settings merged over them (``runners.presets``).

Because every node is a dataclass, a misspelt key or a badly typed value is an error at composition
time, never a silent default. ``compose_config`` turns Hydra's multi-line exceptions into one line that
names the problem and the valid choices (see ``ConfigError``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agents import AGENTS
from curricula import TEACHERS
from envs import ENVS
from runners.presets import PRESET_TARGETS, PRESETS

GROUPS = ("agent", "env", "runner", "curriculum", "preset")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A bad command line or config: its message is one line meant for the user."""


@dataclass
class RunnerConfig:
    """How environment steps are collected. ``num_envs=None`` takes the agent's default."""

    name: str = "default"
    backend: str = "sync"  # sync | async | ray
    num_envs: int | None = None
    num_workers: int = 1  # Ray rollout actors (backend=ray); each steps num_envs / num_workers envs


BACKENDS = ("sync", "async", "ray")


@dataclass
class RayConfig:
    """Where Ray runs. ``address=None`` starts an embedded Ray on this machine (loopback only);
    ``auto`` or ``host:port`` / ``ray://...`` joins an existing cluster."""

    address: str | None = None
    num_cpus: int | None = None  # embedded Ray only; None = all cores


@dataclass
class CurriculumConfig:
    """``curriculum=none``: envs play their own default level distribution."""

    name: str = "none"


@dataclass
class EvalConfig:
    every: int = 10_000  # environment steps between evaluations during training; 0 = only at the end
    episodes: int = 5
    deterministic: bool = True
    # Evaluation suites (see runners.evaluation); empty = the agent's defaults.
    suites: list[str] = field(default_factory=list)


@dataclass
class CheckpointConfig:
    every: int = 10_000  # environment steps between checkpoints (and one at the end)
    keep: int = 2  # newest checkpoints kept on disk


@dataclass
class Config:
    defaults: list[Any] = field(
        default_factory=lambda: [
            {"agent": "sac"},
            {"env": "pointmaze"},
            {"runner": "default"},
            {"curriculum": "none"},
            "_self_",
            # after the root config, before the command line: see runners.presets
            {"optional preset": "${agent}_${env}"},
        ]
    )
    agent: Any = MISSING
    env: Any = MISSING
    runner: Any = MISSING
    curriculum: Any = MISSING
    preset: str = "none"  # the (agent, env) preset applied (runners.presets); set by the preset itself
    steps: int = 20_000  # total environment steps (summed over parallel envs)
    seed: int = 0
    run_dir: str | None = None  # default: runs/<agent>_<env>_seed<seed>_<time>
    device: str = "auto"  # auto | cpu | cuda
    # torch's intra-op CPU threads; None keeps torch's default (one per core). Small networks on a busy
    # machine run far faster with 1-2 (threads spin against the env stepping in the same process).
    threads: int | None = None
    # auto: continue a run directory holding the same experiment; never: refuse an existing run;
    # force: continue even if the stored config differs (the new config is recorded).
    resume: str = "auto"
    log_every: int = 1_000
    progress: bool | None = None  # None: a progress bar only on a terminal
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    # Offline agents (HILP, GCBC) train from this dataset of transitions (see envs.datasets).
    dataset: str | None = None
    # Write every transition the run collects to run_dir/dataset/ (see envs.datasets).
    save_dataset: bool = False


RESUME_MODES = ("auto", "never", "force")
# Keys that may change between invocations on the same run directory without making it a different
# experiment (longer training, another device, more evaluation episodes, ...).
RESUMABLE_KEYS = ("steps", "run_dir", "resume", "progress", "device", "threads", "log_every", "eval", "checkpoint", "ray")


def _register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config", node=Config)
    for name, (cfg_cls, _) in AGENTS.items():
        cs.store(group="agent", name=name, node=cfg_cls(name=name))
    for name, spec in ENVS.items():
        cs.store(group="env", name=name, node=spec)
    cs.store(group="runner", name="default", node=RunnerConfig())
    cs.store(group="curriculum", name="none", node=CurriculumConfig())
    for name, (cfg_cls, _) in TEACHERS.items():
        cs.store(group="curriculum", name=name, node=cfg_cls(name=name))
    for name, node in PRESETS.items():
        cs.store(group="preset", name=name, node=node, package="_global_")


_register()


def group_options(group: str) -> list[str]:
    return sorted(name.removesuffix(".yaml") for name in ConfigStore.instance().list(group))


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def compose_raw(overrides: list[str]) -> DictConfig:
    """Hydra composition without the friendly checks (overrides already validated)."""
    GlobalHydra.instance().clear()
    with initialize(version_base=None, config_path=None):
        return compose(config_name="config", overrides=overrides)


def check_key(base: DictConfig, key: str) -> None:
    """Raise a ConfigError if ``key`` (dotted) is not in ``base``, naming the valid keys at that level."""
    parts = key.split(".")
    node: Any = base
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            parent = ".".join(parts[:depth]) or "the config"
            valid = sorted(k for k in node if k != "defaults") if isinstance(node, DictConfig) else []
            where = parent
            if depth == 1 and parts[0] in GROUPS and "name" in node:
                where = f"{parts[0]} ({node.name})"
            raise ConfigError(
                f"unknown key {key!r}{_suggest(part, valid)}; valid keys of {where}: {', '.join(valid)}"
            )
        node = node[part]


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose the run config from command-line overrides, with one-line errors for bad input."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None

    group_choices: list[str] = []
    for ov in parsed:
        key = ov.key_or_group
        if key in GROUPS and not ov.is_delete():
            value = ov.value()
            choices = group_options(key)
            if not isinstance(value, str) or value not in choices:
                raise ConfigError(
                    f"unknown {key} {value!r}{_suggest(str(value), choices)}; choose one of: {', '.join(choices)}"
                )
            group_choices.append(ov.input_line)
        elif ov.is_add() or ov.is_force_add() or ov.is_delete():
            raise ConfigError(f"override {ov.input_line!r}: adding or deleting keys is not supported")

    check_preset(parsed)
    base = compose_raw(group_choices)
    for ov in parsed:
        if ov.key_or_group not in GROUPS:
            check_key(base, ov.key_or_group)

    try:
        cfg = compose_raw(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_first_line(exc)) from None
    validate(cfg)
    return cfg


def check_preset(parsed: list) -> None:
    """A preset chosen on the command line must be one for the run's agent and env."""
    choices = {d_key: d_val for d in Config().defaults if isinstance(d, dict) for d_key, d_val in d.items()}
    choices.update({ov.key_or_group: ov.value() for ov in parsed if ov.key_or_group in GROUPS and not ov.is_delete()})
    preset = choices.get("preset")
    if preset in PRESET_TARGETS and PRESET_TARGETS[preset] != (choices["agent"], choices["env"]):
        agent, env = PRESET_TARGETS[preset]
        raise ConfigError(f"preset {preset} is for agent={agent} env={env}, not agent={choices['agent']} env={choices['env']}")


def _first_line(exc: BaseException) -> str:
    """One line from Hydra/OmegaConf's multi-line errors: the root cause and the key it concerns."""
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    msg = lines[0] if lines else type(cause).__name__
    key = next((line.removeprefix("full_key:").strip() for line in lines if line.startswith("full_key:")), "")
    return f"{key}: {msg}" if key else msg


def validate(cfg: DictConfig) -> None:
    """Checks that types alone cannot express."""
    if cfg.steps < 0:
        raise ConfigError(f"steps must be >= 0, got {cfg.steps}")
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device {cfg.device!r}; choose one of: {', '.join(DEVICES)}")
    if cfg.resume not in RESUME_MODES:
        raise ConfigError(f"unknown resume mode {cfg.resume!r}; choose one of: {', '.join(RESUME_MODES)}")
    if cfg.runner.backend not in BACKENDS:
        raise ConfigError(
            f"unknown runner.backend {cfg.runner.backend!r}; choose one of: {', '.join(BACKENDS)}"
        )
    if cfg.runner.num_envs is not None and cfg.runner.num_envs < 1:
        raise ConfigError(f"runner.num_envs must be >= 1, got {cfg.runner.num_envs}")
    if cfg.runner.num_workers < 1:
        raise ConfigError(f"runner.num_workers must be >= 1, got {cfg.runner.num_workers}")
    if cfg.runner.backend == "ray" and cfg.runner.num_envs is not None and cfg.runner.num_envs < cfg.runner.num_workers:
        raise ConfigError(
            f"runner.num_envs={cfg.runner.num_envs} is fewer than runner.num_workers={cfg.runner.num_workers}"
        )
    for key in ("log_every", "eval.every", "eval.episodes", "checkpoint.every"):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {OmegaConf.select(cfg, key)}")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads must be >= 1, got {cfg.threads}")
    if cfg.checkpoint.keep < 1:
        raise ConfigError(f"checkpoint.keep must be >= 1, got {cfg.checkpoint.keep}")
    spec = OmegaConf.to_object(cfg.env)
    try:
        spec.validate()
    except ValueError as exc:
        raise ConfigError(f"env {cfg.env.name}: {exc}") from None


def config_differences(old: DictConfig, new: DictConfig) -> list[str]:
    """``key: old -> new`` for every leaf that differs, ignoring keys that may change on resume."""
    a = OmegaConf.to_container(old, resolve=True)
    b = OmegaConf.to_container(new, resolve=True)
    for key in RESUMABLE_KEYS + ("defaults",):
        a.pop(key, None)
        b.pop(key, None)
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k, "<absent>"), y.get(k, "<absent>"), f"{prefix}.{k}" if prefix else k)
        elif x != y:
            out.append(f"{prefix}: {x!r} -> {y!r}")

    walk(a, b, "")
    return out
