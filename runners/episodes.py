"""The one episode loop of the suite: ``play_episodes`` plays whole episodes of a policy, one per level or
per seed, and hands back what each episode did.

Every whole-episode measurement goes through it: the evaluation suites (returns, held-out levels, named
mazes, skill coverage, goal reaching, downstream and prompted returns), population evaluation (many
policies or genomes, each judged by whole episodes) and regret estimation on a level set.

Semantics.

* **One episode per level or seed.** Episode ``k`` is played in an env of its own, reset with seed
  ``seeds[k]`` (``seed + k`` when only levels are given) and the reset options ``options[k]`` plus
  ``{"level": levels[k]}`` (the Levels convention of ``envs.base``). An episode's result depends only on its own seed, level
  and the policy, never on the other episodes: a vector env with autoreset would instead over-sample
  short episodes in a fixed step budget, and a sequence of episodes in one env would make episode ``k``
  depend on how long the earlier ones lasted.
* **Lockstep, one batched policy call per step.** All episodes start together; at each step the policy is
  asked once for the observations of the episodes still running, ``policy(obs, rows) -> actions``, where
  ``rows`` are those episodes' indices (so a policy can keep one skill, goal or genome per episode). A
  finished episode is not stepped again. An agent becomes a policy through ``agent_policy`` (its ``act``),
  a torch module through ``ModulePolicy``.
* **Results in the order given**: returns (undiscounted sums), lengths, the info of each episode's last
  step, and on request the observations (``record_obs``), per-step info fields (``info_keys``, e.g.
  ``("xy",)`` for coverage and trajectories: the value at reset and after every step), rendered frames
  (``render="final"``: the last frame; ``"all"``: the reset frame and one per step) and a per-step callback
  (``on_step``, local back-end only) that sees each batch of steps as it happens.
* **Back-ends.** ``backend="sync"`` plays everything in this process. ``backend="ray"`` splits the episodes
  into ``num_workers`` contiguous chunks and plays each chunk with the same loop as a Ray task, with a copy
  of the policy (pickled once and shared: a picklable callable, or a ``ModulePolicy`` whose module travels
  on the CPU), and joins the chunks in order. The results are identical to the local ones for the same
  seeds whenever the policy's action for a row depends only on that row (batched inference that is exact
  per row, no shared random stream): the population trainer's deterministic controllers are such policies.
  Ray starts embedded on 127.0.0.1 unless it already runs or ``ray_address`` names a cluster
  (``runners.ray_rollout.ray_session`` keeps one up across many calls).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.base import EnvSpec

# policy(observations of the running episodes, their episode indices) -> one action per row
Policy = Callable[[np.ndarray, np.ndarray], Any]
RENDER_MODES = (None, "final", "all")
BACKENDS = ("sync", "ray")


@dataclass
class StepBatch:
    """One lockstep step of the episodes still running: their indices, actions and what the envs returned."""

    rows: np.ndarray
    actions: Any
    observations: list[Any]
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any]]


@dataclass
class Episodes:
    """What ``play_episodes`` hands back, one entry per episode in the order of the levels or seeds."""

    returns: np.ndarray  # float64 [n], undiscounted
    lengths: np.ndarray  # int64 [n], steps played
    final_infos: list[dict[str, Any]]  # the info of each episode's last step
    # info_keys: per key, per episode its values at reset and after every step ([length + 1, ...]), or None
    # for an episode whose env does not report the key at reset
    step_infos: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    observations: list[np.ndarray] | None = None  # record_obs: per episode [length + 1, ...], reset included
    frames: list[list[np.ndarray]] | None = None  # render: per episode its frames

    def __len__(self) -> int:
        return len(self.returns)

    @staticmethod
    def concat(parts: Sequence[Episodes]) -> Episodes:
        """The episodes of ``parts`` one after another (chunks played apart, joined in order)."""
        def joined(lists: list[list[Any] | None]) -> list[Any] | None:
            return None if lists[0] is None else [x for part in lists for x in part]

        return Episodes(
            returns=np.concatenate([p.returns for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            final_infos=[info for p in parts for info in p.final_infos],
            step_infos={key: [x for p in parts for x in p.step_infos[key]] for key in parts[0].step_infos},
            observations=joined([p.observations for p in parts]),
            frames=joined([p.frames for p in parts]),
        )


def agent_policy(agent: Any, deterministic: bool = True) -> Policy:
    """An agent as a policy: one batched ``act(obs, deterministic)`` per step. Episodes keep their row: the
    batch the agent sees has row ``k`` for episode ``k`` (rows of episodes that have ended hold a copy of a
    running episode's observation, so the agent only ever sees valid observations, and their actions are
    dropped), so per-env agent state, such as the skill a skill agent's ``act`` gives
    env ``k``, stays with its episode from the first step to the last."""
    return _AgentPolicy(agent, deterministic)


class _AgentPolicy:
    def __init__(self, agent: Any, deterministic: bool):
        self.agent = agent
        self.deterministic = deterministic

    def __call__(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        batch = np.repeat(obs[:1], int(rows.max()) + 1, axis=0)
        batch[rows] = obs
        return np.asarray(self.agent.act(batch, deterministic=self.deterministic))[rows]


class ModulePolicy:
    """A torch module as a policy: ``module(obs tensor) -> actions`` without gradients, on the module's
    device. Pickled (for Ray workers) with a CPU copy of the module, i.e. its state dict travels with it."""

    def __init__(self, module: Any):
        self.module = module

    def __call__(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        import torch

        device = next(self.module.parameters(), torch.empty(0)).device
        with torch.no_grad():
            return self.module(torch.as_tensor(obs, device=device)).cpu().numpy()

    def __getstate__(self) -> dict[str, Any]:
        return {"module": copy.deepcopy(self.module).cpu()}


@dataclass
class _Plan:
    """The episodes to play: their indices in the whole set, seeds and reset options (level included)."""

    index: np.ndarray
    seeds: list[int | None]
    options: list[dict[str, Any] | None]

    def chunk(self, block: range) -> _Plan:
        return _Plan(self.index[block.start:block.stop], self.seeds[block.start:block.stop],
                     self.options[block.start:block.stop])


@dataclass
class _Capture:
    """What to record besides returns and lengths (shipped with every chunk)."""

    info_keys: tuple[str, ...] = ()
    record_obs: bool = False
    render: str | None = None


def play_episodes(policy: Policy, spec: EnvSpec, levels: Sequence[Any] | None = None,
                  seeds: Sequence[int | None] | None = None, *, seed: int = 0,
                  options: Sequence[dict[str, Any] | None] | None = None, backend: str = "sync",
                  info_keys: Sequence[str] = (), record_obs: bool = False, render: str | None = None,
                  on_step: Callable[[StepBatch], None] | None = None, num_workers: int | None = None,
                  ray_address: str | None = None, ray_num_cpus: int | None = None) -> Episodes:
    """Play one episode of ``policy`` on ``spec`` per level (seeded ``seeds[k]``, else ``seed + k``) or per
    seed, in lockstep; see the module docstring. ``options``: extra reset options per episode."""
    plan = _plan(levels, seeds, seed, options)
    if render not in RENDER_MODES:
        raise ValueError(f"unknown render {render!r}; choose one of: None, final, all")
    capture = _Capture(tuple(info_keys), record_obs, render)
    if backend == "sync":
        return _play(policy, spec, plan, capture, on_step)
    if backend != "ray":
        raise ValueError(f"unknown episode back-end {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if on_step is not None:
        raise ValueError("on_step runs in this process: use backend='sync' (capture per-step fields with info_keys)")
    from runners.ray_rollout import map_on_workers, split_envs

    n = len(plan.index)
    if n == 0:
        return _play(policy, spec, plan, capture, None)
    chunks = [plan.chunk(block) for block in split_envs(n, min(num_workers or n, n))]
    parts = map_on_workers(_play_chunk, (policy, spec, capture), chunks, num_workers=len(chunks),
                           address=ray_address, num_cpus=ray_num_cpus)
    return Episodes.concat(parts)


def _plan(levels: Sequence[Any] | None, seeds: Sequence[int | None] | None, seed: int,
          options: Sequence[dict[str, Any] | None] | None) -> _Plan:
    if levels is None and seeds is None:
        raise ValueError("play_episodes needs levels or seeds (one episode each)")
    n = len(levels) if levels is not None else len(seeds)
    if seeds is not None and len(seeds) != n:
        raise ValueError(f"play_episodes got {n} levels but {len(seeds)} seeds; give one seed per level")
    if options is not None and len(options) != n:
        raise ValueError(f"play_episodes got {len(options)} reset options for {n} episodes; give one per episode")
    episode_options: list[dict[str, Any] | None] = []
    for k in range(n):
        extra = dict(options[k] or {}) if options is not None else {}
        if levels is not None:
            extra["level"] = levels[k]
        episode_options.append(extra or None)
    episode_seeds = list(seeds) if seeds is not None else [seed + k for k in range(n)]
    return _Plan(np.arange(n), episode_seeds, episode_options)


def _play_chunk(shared: tuple[Policy, EnvSpec, _Capture], plan: _Plan) -> Episodes:
    """One Ray task: a chunk of the episodes, played by the local loop."""
    policy, spec, capture = shared
    return _play(policy, spec, plan, capture, None)


class _Record:
    """The episodes' running returns, lengths, last infos and what ``capture`` asks for."""

    def __init__(self, n: int, capture: _Capture):
        self.capture = capture
        self.returns = np.zeros(n)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.final_infos: list[dict[str, Any]] = [{} for _ in range(n)]
        self.observations: list[list[Any]] = [[] for _ in range(n)]
        self.fields: dict[str, list[list[Any]]] = {key: [[] for _ in range(n)] for key in capture.info_keys}
        self.frames: list[list[np.ndarray]] = [[] for _ in range(n)]

    def observe(self, k: int, env: Any, obs: Any, info: dict[str, Any], ended: bool) -> None:
        """Episode ``k`` reached ``obs`` (its reset observation, or the result of a step)."""
        if self.capture.record_obs:
            self.observations[k].append(obs)
        for key, values in self.fields.items():
            values[k].append(info.get(key))
        if self.capture.render == "all" or (self.capture.render == "final" and ended):
            self.frames[k].append(env.render())

    def step(self, k: int, env: Any, obs: Any, reward: float, info: dict[str, Any], ended: bool) -> None:
        self.returns[k] += float(reward)
        self.lengths[k] += 1
        self.final_infos[k] = info
        self.observe(k, env, obs, info, ended)

    def episodes(self) -> Episodes:
        return Episodes(
            returns=self.returns, lengths=self.lengths, final_infos=self.final_infos,
            step_infos={key: [None if v[0] is None else np.asarray(v) for v in values]
                        for key, values in self.fields.items()},
            observations=[np.stack(o) for o in self.observations] if self.capture.record_obs else None,
            frames=self.frames if self.capture.render is not None else None,
        )


def _play(policy: Policy, spec: EnvSpec, plan: _Plan, capture: _Capture,
          on_step: Callable[[StepBatch], None] | None) -> Episodes:
    """The lockstep loop over ``plan``'s episodes, one env each (see the module docstring)."""
    n = len(plan.index)
    envs = [spec.make(render_mode="rgb_array" if capture.render is not None else None) for _ in range(n)]
    record = _Record(n, capture)
    try:
        current = []
        for k, env in enumerate(envs):
            obs, info = env.reset(seed=plan.seeds[k], options=plan.options[k])
            current.append(obs)
            record.observe(k, env, obs, info, ended=False)
        running = np.arange(n)
        while len(running):
            actions = policy(np.stack([current[k] for k in running]), plan.index[running])
            if len(actions) != len(running):
                raise ValueError(f"the policy returned {len(actions)} actions for {len(running)} observations")
            results = [envs[k].step(action) for k, action in zip(running, actions)]
            terminated = np.array([bool(r[2]) for r in results])
            truncated = np.array([bool(r[3]) for r in results])
            ended = terminated | truncated
            for j, k in enumerate(running):
                current[k] = results[j][0]
                record.step(k, envs[k], results[j][0], results[j][1], results[j][4], bool(ended[j]))
            if on_step is not None:
                on_step(StepBatch(plan.index[running], actions, [r[0] for r in results],
                                  np.array([float(r[1]) for r in results]), terminated, truncated,
                                  [r[4] for r in results]))
            running = running[~ended]
    finally:
        for env in envs:
            env.close()
    return record.episodes()
