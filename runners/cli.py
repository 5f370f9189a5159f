"""Console entry points: ``rl-run`` (train one experiment) and ``rl-eval`` (evaluate a trained run).

Both take Hydra-style ``key=value`` overrides. Bad input (an unknown agent, env or key, a bad value, a
run directory holding another experiment) prints one ``error:`` line naming the problem and the valid
choices, and exits with status 2 before anything is written.
"""

from __future__ import annotations

import logging
import os
import sys

from runners.config import GROUPS, ConfigError, group_options

EXIT_USAGE = 2

RUN_USAGE = """usage: rl-run [agent=NAME] [env=NAME] [steps=N] [seed=S] [run_dir=DIR] [device=auto|cpu|cuda] [KEY=VALUE ...]

Train one experiment. Any config key can be overridden (agent.lr=3e-4, env.task=run, runner.num_envs=8,
eval.every=5000, checkpoint.every=5000). Rerunning with the same run_dir resumes from its latest
checkpoint; a larger steps= continues training.

{groups}
Show the full config with: rl-run [overrides] --cfg
"""

EVAL_USAGE = """usage: rl-eval run_dir=DIR [episodes=N] [suite=NAME[,NAME]] [seed=S] [device=auto|cpu|cuda]
               [env=NAME] [env.KEY=VALUE ...]

Evaluate the latest checkpoint of a run. Results go to DIR/eval/ (JSON) and TensorBoard (eval/).
env= and env.*= evaluate on another env or task (zero-shot transfer). Suites: {suites}
"""


def _groups_text() -> str:
    return "\n".join(f"  {g:<11} {', '.join(group_options(g))}" for g in GROUPS)


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _quiet_libraries() -> None:
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    logging.getLogger("hydra").setLevel(logging.WARNING)


def run_main(argv: list[str] | None = None) -> int:
    """``rl-run``: compose the config, then train (or resume)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    if any(a in ("-h", "--help") for a in argv):
        print(RUN_USAGE.format(groups=_groups_text()))
        return 0
    show_cfg = "--cfg" in argv
    overrides = [a for a in argv if a != "--cfg"]
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        return _fail("rl-run", f"unknown option {flags[0]!r}; overrides are KEY=VALUE (see rl-run --help)")

    from omegaconf import OmegaConf

    from runners.config import compose_config
    from runners.train import train

    try:
        cfg = compose_config(overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        result = train(cfg, overrides)
    except ConfigError as exc:
        return _fail("rl-run", str(exc))
    except KeyboardInterrupt:
        print("rl-run: interrupted; rerun the same command to resume from the latest checkpoint", file=sys.stderr)
        return 130
    scalars = (result.last_eval or {}).get("results", {}).get("returns", {}).get("scalars", {})
    summary = ", ".join(f"{k}={v:.3f}" for k, v in scalars.items())
    print(f"run {result.run_dir}: {result.steps} steps, {result.episodes} episodes" + (f"; eval {summary}" if summary else ""))
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    """``rl-eval``: load a run's latest checkpoint and run its evaluation suites."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    from runners.evaluation import SUITES

    if any(a in ("-h", "--help") for a in argv):
        print(EVAL_USAGE.format(suites=", ".join(sorted(SUITES))))
        return 0
    from runners.evaluate_run import evaluate_run, parse_eval_args

    try:
        args = parse_eval_args(argv)
        out = evaluate_run(args)
    except ConfigError as exc:
        return _fail("rl-eval", str(exc))
    for suite, result in out["results"].items():
        scalars = result.get("scalars", {})
        print(f"{suite}: " + ", ".join(f"{k}={v:.3f}" for k, v in scalars.items()))
    print(f"wrote {out['path']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_main())
