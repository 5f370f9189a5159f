"""``rl-collect``: build a dataset of transitions with this suite's own agents (ExORL's recipe).

    rl-collect preset=random|metra|mixture env=NAME steps=N out=DIR [seed=S] [KEY=VALUE ...]

Each preset is an ordinary ``rl-run`` with ``save_dataset=true``: ``random`` a uniform random policy,
``metra`` the data a METRA agent collects while it learns its skills (its replay data, as ExORL kept
the replay buffers of unsupervised agents), ``mixture`` half of the steps from each. The runs live in
``DIR/runs/<preset>`` (config, logs, checkpoints: provenance, and rerunning an interrupted collection
resumes them); their episodes are then merged into the dataset at ``DIR`` (``DIR/metadata.json`` and
``DIR/data/``, the layout of ``envs.datasets``), read by ``load_dataset(DIR)`` or ``rl-run ...
dataset=DIR``. An existing dataset at ``DIR`` is never overwritten.

Other overrides go to every run; ``agent.*`` overrides only to the learning agent's run (the random
policy has no parameters).
"""

from __future__ import annotations

import sys
from pathlib import Path

from runners.config import ConfigError

PRESETS = {"random": [("random", 1.0)], "metra": [("metra", 1.0)], "mixture": [("random", 0.5), ("metra", 0.5)]}
USAGE = """usage: rl-collect preset=random|metra|mixture env=NAME steps=N out=DIR [seed=S] [KEY=VALUE ...]

Collect a dataset of transitions (random policy, METRA while it learns, or half of each) into DIR.
Other KEY=VALUE overrides are rl-run's (agent.* ones only reach the METRA run)."""


def parse_collect_args(argv: list[str]) -> tuple[str, Path, int, list[str]]:
    """(preset, out, steps, the other overrides), or ConfigError."""
    values, rest = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {arg!r} (see rl-collect --help)")
        if key in ("preset", "out", "steps", "agent"):
            values[key] = value
        else:
            rest.append(arg)
    if "agent" in values:
        raise ConfigError(f"rl-collect picks the agents from preset=; choose a preset ({', '.join(PRESETS)}) instead of agent=")
    preset = values.get("preset", "random")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if "out" not in values:
        raise ConfigError("missing out=DIR: where to write the dataset")
    try:
        steps = int(values.get("steps", "100000"))
    except ValueError:
        raise ConfigError(f"steps must be an integer, got {values['steps']!r}") from None
    if steps <= 0:
        raise ConfigError(f"steps must be positive, got {steps}")
    return preset, Path(values["out"]), steps, rest


def collect(preset: str, out: Path, steps: int, overrides: list[str]) -> Path:
    """Run the preset's agents with ``save_dataset=true`` and merge their datasets into ``out``."""
    from envs.datasets import DatasetError, merge_datasets, read_metadata
    from runners.config import compose_config
    from runners.train import train

    if (out / "metadata.json").exists():
        raise ConfigError(f"dataset {out} already exists; choose another out= or remove it")
    sources = []
    for agent, share in PRESETS[preset]:
        run_overrides = [f"agent={agent}", f"steps={max(1, round(steps * share))}", "save_dataset=true",
                         f"run_dir={out / 'runs' / agent}"]
        run_overrides += [o for o in overrides if agent != "random" or not o.startswith("agent.")]
        train(compose_config(run_overrides), run_overrides)
        sources.append(out / "runs" / agent / "dataset")
    try:
        metas = [read_metadata(s) for s in sources]
        return merge_datasets(sources, out, {"preset": preset, "steps": sum(int(m["total_steps"]) for m in metas),
                                             "agent": "+".join(m["agent"] for m in metas)})
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


def collect_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        preset, out, steps, overrides = parse_collect_args(argv)
        path = collect(preset, out, steps, overrides)
    except ConfigError as exc:
        print(f"rl-collect: error: {exc}", file=sys.stderr)
        return 2
    from envs.datasets import read_metadata

    meta = read_metadata(path)
    print(f"dataset {path}: {meta['total_episodes']} episodes, {meta['total_steps']} transitions ({preset})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(collect_main())
