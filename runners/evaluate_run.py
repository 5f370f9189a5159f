"""``rl-eval``: evaluate the latest checkpoint of a run, on its own env or zero-shot on another.

The agent is rebuilt from the run's stored config and loaded from its newest checkpoint. ``env=NAME``
and ``env.KEY=VALUE`` pick the evaluation env (another task of the same domain, another maze, ...),
which must have the observation and action spaces the agent was trained with. Results are written to
``DIR/eval/<suite>_<env>_step<N>.json`` and to TensorBoard under ``rl_eval/<env>/<suite>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from envs import EnvSpec
from runners.checkpoint import latest_checkpoint
from runners.config import ConfigError, check_key, compose_raw, group_options
from runners.evaluation import SUITES, EvalContext, evaluate
from runners.rollout import make_vector_env
from runners.rundir import load_run_config
from runners.shell import read_checkpoint
from runners.train import build_agent, eval_suites_for, resolve_device, space_signature

EVAL_KEYS = ("run_dir", "episodes", "suite", "seed", "device", "deterministic", "env")


@dataclass
class EvalArgs:
    run_dir: Path
    episodes: int | None = None
    suites: list[str] = field(default_factory=list)
    seed: int | None = None
    device: str = "auto"
    deterministic: bool | None = None
    env: str | None = None
    env_overrides: list[str] = field(default_factory=list)


def parse_eval_args(argv: list[str]) -> EvalArgs:
    values: dict[str, str] = {}
    env_overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {arg!r} (see rl-eval --help)")
        if key.startswith("env."):
            env_overrides.append(arg[len("env."):])
        elif key in EVAL_KEYS:
            values[key] = value
        else:
            raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(EVAL_KEYS)}, env.<field>")
    if "run_dir" not in values:
        raise ConfigError("run_dir=DIR is required")
    args = EvalArgs(run_dir=Path(values["run_dir"]), env=values.get("env"), env_overrides=env_overrides)
    for key in ("episodes", "seed"):
        if key in values:
            try:
                setattr(args, key, int(values[key]))
            except ValueError:
                raise ConfigError(f"{key} must be an integer, got {values[key]!r}") from None
    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {args.episodes}")
    if "suite" in values:
        args.suites = [s for s in values["suite"].split(",") if s]
        unknown = [s for s in args.suites if s not in SUITES]
        if unknown or not args.suites:
            raise ConfigError(f"unknown suite {(unknown or [''])[0]!r}; choose from: {', '.join(sorted(SUITES))}")
    if "deterministic" in values:
        if values["deterministic"].lower() not in ("true", "false"):
            raise ConfigError(f"deterministic must be true or false, got {values['deterministic']!r}")
        args.deterministic = values["deterministic"].lower() == "true"
    args.device = values.get("device", "auto")
    if args.env is not None and args.env not in group_options("env"):
        raise ConfigError(f"unknown env {args.env!r}; choose one of: {', '.join(group_options('env'))}")
    return args


def eval_env_spec(saved: DictConfig, env_name: str | None, env_overrides: list[str]) -> EnvSpec:
    """The run's env (or ``env_name``'s defaults) with ``env_overrides`` applied, type-checked."""
    name = env_name or saved.env.name
    node = compose_raw([f"env={name}"]).env
    if env_name is None or env_name == saved.env.name:
        node = OmegaConf.merge(node, saved.env)
    for override in env_overrides:
        key, _, _ = override.partition("=")
        check_key(OmegaConf.create({"env": node}), f"env.{key}")
    try:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(env_overrides))
    except Exception as exc:
        raise ConfigError(f"bad env override: {str(exc).splitlines()[0]}") from None
    spec = OmegaConf.to_object(node)
    try:
        spec.validate()
    except ValueError as exc:
        raise ConfigError(f"env {name}: {exc}") from None
    return spec


def evaluate_run(args: EvalArgs) -> dict[str, Any]:
    saved = load_run_config(args.run_dir)
    ckpt_path = latest_checkpoint(args.run_dir)
    if ckpt_path is None:
        raise ConfigError(f"run_dir {args.run_dir} has no checkpoint to evaluate (checkpoints/ is empty)")
    device = resolve_device(args.device)
    if device.type == "cpu":
        # Evaluation acts on a handful of observations per call, where torch's intra-op threads only add
        # synchronisation (tens of ms per call on a busy machine instead of about one).
        torch.set_num_threads(1)
    checkpoint = read_checkpoint(ckpt_path, device)
    spec = eval_env_spec(saved, args.env, args.env_overrides)

    cfg = compose_raw([f"agent={saved.agent.name}"])
    cfg.agent = OmegaConf.merge(cfg.agent, saved.agent)
    probe = make_vector_env(spec, 1, "sync", 0)
    try:
        obs_space, act_space = probe.single_observation_space, probe.single_action_space
    finally:
        probe.close()
    trained_on = checkpoint.get("spaces")
    if trained_on is not None and trained_on != space_signature(obs_space, act_space):
        raise ConfigError(
            f"env {spec.describe()} has spaces {space_signature(obs_space, act_space)} but the agent was "
            f"trained on {trained_on}"
        )
    agent = build_agent(cfg, spec, obs_space, act_space, 1, device)
    agent.load_state_dict(checkpoint["agent"])
    step = int(checkpoint["step"])

    out_dir = Path(args.run_dir) / "eval"
    out_dir.mkdir(exist_ok=True)
    suites = args.suites or eval_suites_for(saved, agent, spec, heldout=True)
    ctx = EvalContext(
        agent=agent,
        env=spec,
        episodes=args.episodes or max(int(saved.eval.episodes), 1),
        seed=args.seed if args.seed is not None else int(saved.seed) + 2_000_003,
        deterministic=args.deterministic if args.deterministic is not None else bool(saved.eval.deterministic),
        out_dir=out_dir,
        step=step,
    )
    results = evaluate(ctx, suites)

    env_tag = spec.describe()
    path = out_dir / f"{'+'.join(suites)}_{env_tag}_step{step}.json"
    record = {
        "run_dir": str(args.run_dir),
        "checkpoint": ckpt_path.name,
        "step": step,
        "env": OmegaConf.to_container(OmegaConf.structured(spec)),
        "episodes": ctx.episodes,
        "seed": ctx.seed,
        "deterministic": ctx.deterministic,
        "results": results,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=_json_default))
    tmp.replace(path)
    writer = SummaryWriter(log_dir=str(Path(args.run_dir) / "tb"))
    for suite, result in results.items():
        for key, value in result.get("scalars", {}).items():
            writer.add_scalar(f"rl_eval/{env_tag}/{suite}/{key}", value, global_step=step)
    writer.close()
    return {"path": path, "results": results}


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
