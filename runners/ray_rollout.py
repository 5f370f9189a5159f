"""The Ray rollout back-end: a Gymnasium vector env whose sub-envs live in Ray actors.

Design.

* **Actors.** :class:`RayVectorEnv` starts ``num_workers`` rollout actors (:class:`RolloutWorker`). Each holds
  a contiguous block of the ``num_envs`` envs as one local vector env: a Gymnasium ``SyncVectorEnv`` in
  ``AutoresetMode.SAME_STEP`` over ``spec.make``, or the family's own batched env (``spec.make_native_vec``,
  e.g. Procgen). When ``num_envs % num_workers != 0`` the first workers hold one env more. The ``EnvSpec``
  dataclass is shipped to the actors as a constructor argument (Ray pickles it), so any registered family
  works without further code. Actors ask for one CPU each (a fair share of the cluster's CPUs when there
  are fewer CPUs than workers), are spread over the cluster's nodes and run at niceness 0 (Ray's default
  for workers is 15). A worker that cannot start within ``WORKER_START_TIMEOUT_S`` is an error that names
  its CPU request, not a silent hang.
* **Batching.** One vector step is one call per worker: the driver sends each worker its slice of the action
  array and gets back batched arrays (observations, rewards, terminations, truncations) plus the worker's
  vector info dict, never per-env Python objects on the hot path. ``step_async`` sends every call before
  ``step_wait`` collects any, so the workers step in parallel; the driver then concatenates the blocks. The
  policy is not here: the runner acts once per step on the whole batch.
* **Transport.** A Ray actor call costs one to two milliseconds of round trip and driver CPU on a two-core
  machine, as much as stepping several envs. So a worker on the driver's own node (always the case with the
  embedded Ray) also opens a local channel, an authenticated Unix socket in the abstract namespace served by
  a thread of the actor, and its reset/step/attribute calls go over it (a socket round trip of pickled
  arrays, several times cheaper). Workers on other nodes are called through Ray. Ray still places, starts,
  kills and replaces every worker; a worker whose process dies shows up as a closed channel or a failed Ray
  call alike. ``local_channel=False`` sends everything through Ray.
* **Info.** The workers' infos follow Gymnasium's vector convention (``info[key]`` with a bool mask
  ``info["_" + key]``); :func:`merge_infos` joins them block by block, filling keys a block lacks with
  zeros (``None`` for object arrays) and a False mask. ``final_obs`` / ``_final_obs`` arrive this way.
* **Attributes.** ``call``, ``get_attr`` and ``set_attr`` reach every sub-env as in Gymnasium's vector envs;
  ``set_attr`` with one value per env sends each worker its block (the curriculum queues each env's
  ``next_level`` this way).
* **Autoreset.** Identical to the local back-ends, because the workers run the same ``SyncVectorEnv`` in
  ``SAME_STEP`` mode: on the step that ends an episode the observation is already the next episode's first
  and the last one is in ``info["final_obs"]``. ``reset(seed=s)`` seeds env ``i`` with ``s + i``, as
  ``SyncVectorEnv`` does, so the same seeds and actions give the same transitions in every back-end.
* **Levels.** ``reset(options={"level": [level_0, ..., level_{n-1}]})`` gives env ``i`` the reset option
  ``{"level": level_i}`` (other options go to every env unchanged); ``runners.rollout.reset_with_levels``
  does the same for the local back-ends. Native vector envs receive their block of the list as is.
* **Fault tolerance.** If a worker dies (its process is killed, an env segfaults) or an env raises, the
  worker is replaced by a new actor whose envs are built afresh and reset with a seed derived from
  ``(seed, worker, restart number)``. The step still returns a full batch: the lost envs' rows carry the new
  episodes' first observations, reward 0, ``terminated = truncated = False`` and ``info["dropped"]`` True
  (mask ``_dropped``), so the runner counts those episodes as dropped and agents do not learn from them.
  A warning names the worker. A worker that fails ``max_consecutive_failures`` times in a row without one
  good step in between raises, so a deterministic bug (a bad action, an env that always crashes) stops the
  run instead of looping. A worker found failed in ``call``/``set_attr`` is killed and replaced at the next
  step, whose rows for it are marked dropped (its envs answer None to that call); one found failed at
  ``reset`` is replaced and the reset retried once.
* **Whole episodes.** ``map_on_workers(fn, shared, chunks)`` runs ``fn(shared, chunk)`` for each chunk as a
  Ray task (``shared``, e.g. a policy and an env spec, is pickled once into Ray's object store) and returns
  the results in the order of the chunks. ``runners.episodes.play_episodes(backend="ray")`` plays chunks of
  whole episodes this way (population evaluation, regret estimation, big level sets); ``ray_session`` holds
  Ray across many such calls.
* **Ray itself.** Without an address Ray starts in-process on loopback (no dashboard, no usage stats, workers'
  output and Ray's messages below ERROR kept out of the run's console, ``num_cpus`` from the config or all
  cores) unless it is already initialised, in which case it is reused.
  ``address="auto"``, ``host:port`` or ``ray://...`` joins an existing cluster; nothing else changes.
  ``close`` ends the actors, and ends Ray only if this module started it and no other ``RayVectorEnv``
  still uses it.

Latency. A step costs the slowest worker's stepping plus one round trip plus the driver's own work (policy,
pickling, concatenation); ``benchmarks/rollout_throughput.py`` measures it. With the channel the driver
spends most of a step blocked on the workers' replies, so what remains is the workers' stepping itself.
Overlapping the policy with env stepping (each worker holding two halves of its envs and stepping one while
the driver acts on the other) needs the runner to act on half a batch at a time, which the synchronous
``act(obs) -> step(actions)`` loop and batch-shaped agent state (rollout buffers, per-env skills) do not
allow, so it is not done here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
import secrets
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, ClassVar

# Read by Ray when it is imported: keep an embedded Ray on 127.0.0.1 (a cluster sets its own addresses) and
# send no usage statistics. Entry points that import Ray earlier must set these first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import gymnasium as gym
import numpy as np
import ray
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from envs.base import AUTORESET_MODE, EnvSpec

logger = logging.getLogger(__name__)

# A worker that has not started by then is taken to be waiting for CPUs the cluster does not have (an
# autoscaling cluster may need minutes to add a node).
WORKER_START_TIMEOUT_S = 300

# Ray started by this module, and how many open RayVectorEnvs use it (it is shut down with the last one).
_ray_lock = threading.Lock()
_ray_started_here = False
_ray_users = 0


def split_envs(num_envs: int, num_workers: int) -> list[range]:
    """Contiguous blocks of env indices, one per worker; the first ``num_envs % num_workers`` get one more."""
    if not 1 <= num_workers <= num_envs:
        raise ValueError(f"need 1 <= num_workers <= num_envs, got num_workers={num_workers}, "
                         f"num_envs={num_envs}")
    size, extra = divmod(num_envs, num_workers)
    blocks, start = [], 0
    for w in range(num_workers):
        stop = start + size + (w < extra)
        blocks.append(range(start, stop))
        start = stop
    return blocks


def _acquire_ray(address: str | None, num_cpus: int | None) -> None:
    """Initialise Ray unless it already is: embedded on loopback, or joining the cluster at ``address``."""
    global _ray_started_here, _ray_users
    with _ray_lock:
        if not ray.is_initialized():
            if address is None:
                # "local": a new embedded instance, even if `ray start` left a cluster address here.
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            _ray_started_here = True
        _ray_users += 1


def _release_ray() -> None:
    global _ray_started_here, _ray_users
    with _ray_lock:
        _ray_users -= 1
        if _ray_users == 0 and _ray_started_here and ray.is_initialized():
            ray.shutdown()
            _ray_started_here = False


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Hold Ray (embedded on loopback, or the cluster at ``address``) for the duration of the block, so that
    many ``map_on_workers`` calls (one per generation of a population, say) share one Ray start."""
    _acquire_ray(address, num_cpus)
    try:
        yield
    finally:
        _release_ray()


def _run_chunk(fn: Callable[[Any, Any], Any], shared: Any, chunk: Any) -> Any:
    return fn(shared, chunk)


def map_on_workers(fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any], num_workers: int | None = None,
                   address: str | None = None, num_cpus: int | None = None) -> list[Any]:
    """``[fn(shared, chunk) for chunk in chunks]``, each call a Ray task on one CPU (a fair share when the
    cluster has fewer CPUs than ``num_workers``, default one task per chunk); ``shared`` is put into Ray's
    object store once. ``fn`` must be importable by the workers (a module-level function)."""
    with ray_session(address, num_cpus):
        workers = max(1, num_workers or len(chunks))
        cpus = min(1.0, ray.cluster_resources().get("CPU", 1.0) / workers)
        task = ray.remote(_run_chunk).options(num_cpus=cpus, max_retries=0, enable_task_events=False)
        shared_ref = ray.put(shared)
        return ray.get([task.remote(fn, shared_ref, chunk) for chunk in chunks])


class WorkerFailed(RuntimeError):
    """A rollout worker died, or one of its envs raised."""


class _LevelFromList(gym.Wrapper):
    """Picks this env's entry of a per-env level list passed to the vector env's reset."""

    def __init__(self, env: gym.Env, index: int):
        super().__init__(env)
        self._index = index

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options and "level" in options:
            options = {**options, "level": options["level"][self._index]}
        return self.env.reset(seed=seed, options=options)


class RolloutWorker:
    """One Ray actor's block of envs (see the module docstring); ``reset``/``step`` return batched arrays."""

    def __init__(self, spec: EnvSpec, num_envs: int, seed: int):
        if spec.native_vector:
            self.envs = spec.make_native_vec(num_envs, seed)
        else:
            # copy=False: the result is serialised before the next call can overwrite the arrays.
            fns = [lambda j=j: _LevelFromList(spec.make(), j) for j in range(num_envs)]
            self.envs = gym.vector.SyncVectorEnv(fns, copy=False, autoreset_mode=AUTORESET_MODE)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs.single_observation_space, self.envs.single_action_space

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def reset(self, seed: int | list[int | None] | None, options: dict[str, Any] | None):
        return self.envs.reset(seed=seed, options=options)

    def step(self, actions: Any):
        return self.envs.step(actions)

    def call(self, name: str, args: tuple, kwargs: dict[str, Any]) -> tuple:
        return self.envs.call(name, *args, **kwargs)

    def set_attr(self, name: str, values: list[Any]) -> None:
        self.envs.set_attr(name, values)

    def close(self) -> None:
        self.envs.close()

    def open_channel(self, authkey: bytes) -> str:
        """Listen on a fresh abstract Unix socket; a thread then serves the one driver that connects."""
        listener = Listener(f"\0openrl-rollout-{uuid.uuid4().hex}", family="AF_UNIX", authkey=authkey)
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()
        return listener.address

    def _serve(self, listener: Listener) -> None:
        with listener, listener.accept() as conn:
            while True:
                try:
                    method, args = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):  # the driver closed the channel
                    return
                try:
                    result = getattr(self, method)(*args)
                    reply = pickle.dumps((True, result), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:
                    reply = pickle.dumps((False, traceback.format_exc()))  # replaces this worker
                try:
                    conn.send_bytes(reply)
                except OSError:  # the driver is gone
                    return


class _WorkerHandle:
    """The driver's end of one rollout worker: its actor, and the local channel if it has one."""

    def __init__(self, actor: Any, channel: Connection | None):
        self.actor = actor
        self.channel = channel
        self._pending: Any = None  # the ObjectRef of a Ray call, or the error of a failed send

    def submit(self, method: str, *args: Any) -> None:
        if self.channel is None:
            self._pending = getattr(self.actor, method).remote(*args)
            return
        try:
            self.channel.send_bytes(pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as err:  # the worker is gone; result() reports it
            self._pending = err

    def result(self) -> Any:
        """The submitted call's return value; raises WorkerFailed if the worker died or the call raised."""
        pending, self._pending = self._pending, None
        if self.channel is None:
            try:
                return ray.get(pending)
            except (RayActorError, RayTaskError) as err:
                raise WorkerFailed(_first_line(err)) from err
        if pending is not None:
            raise WorkerFailed(f"the worker's channel is closed ({pending!r})")
        try:
            ok, value = pickle.loads(self.channel.recv_bytes())
        except (EOFError, OSError) as err:
            raise WorkerFailed("the worker process exited (its channel closed)") from err
        if not ok:
            raise WorkerFailed(value.strip().splitlines()[-1] + "\n" + value)
        return value

    def close(self, timeout: float) -> None:
        """Close the channel and the envs, then end the actor (a dead or hung worker is simply killed)."""
        if self.channel is not None:
            self.channel.close()
        with contextlib.suppress(Exception):
            ray.get(self.actor.close.remote(), timeout=timeout)
        self.kill()

    def kill(self) -> None:
        if self.channel is not None:
            self.channel.close()
        with contextlib.suppress(Exception):  # already gone, or Ray shut down at interpreter exit
            ray.kill(self.actor)


def _concat(parts: list[Any]) -> Any:
    """Concatenate batched values along the env axis, through dict and tuple spaces."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(_concat(list(group)) for group in zip(*parts))
    return np.concatenate(parts)


def _take(batch: Any, block: range) -> Any:
    """One worker's slice of a batch (actions), through dict and tuple spaces."""
    if isinstance(batch, dict):
        return {k: _take(v, block) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_take(v, block) for v in batch)
    return np.asarray(batch)[block.start:block.stop]


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Join per-block vector infos (Gymnasium's ``key`` / ``_key`` convention) into one for all envs."""
    keys: dict[str, None] = {}  # ordered union of the data keys (those with a mask)
    for part in parts:
        keys.update((k, None) for k in part if f"_{k}" in part)
    out: dict[str, Any] = {}
    for key in keys:
        values = [part.get(key) for part in parts]
        present = next(v for v in values if v is not None)
        if isinstance(present, dict):
            out[key] = merge_infos([v if v is not None else {} for v in values], sizes)
        elif all(v is not None for v in values):
            out[key] = np.concatenate(values)
        else:  # some blocks lack the key: their rows get a blank value and a False mask
            if present.dtype == object:
                array = np.full(sum(sizes), None, dtype=object)
            else:
                array = np.zeros((sum(sizes), *present.shape[1:]), dtype=present.dtype)
            start = 0
            for value, size in zip(values, sizes):
                if value is not None:
                    array[start:start + size] = value
                start += size
            out[key] = array
        out[f"_{key}"] = np.concatenate([part.get(f"_{key}", np.zeros(size, dtype=bool))
                                         for part, size in zip(parts, sizes)])
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class RayVectorEnv(VectorEnv):
    """``num_envs`` copies of ``spec`` stepped by ``num_workers`` Ray actors (see the module docstring).

    ``address``/``num_cpus``: where Ray runs (``ray.address``/``ray.num_cpus`` of the config); ``seed``: the
    base seed of native vector envs and of replacement workers; ``local_channel=False`` sends every call
    through Ray even to workers on the driver's node."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    # ``reset(options={"level": [...]})`` takes one level per env (see runners.rollout.reset_with_levels).
    accepts_level_lists = True

    def __init__(self, spec: EnvSpec, num_envs: int, num_workers: int = 1, seed: int = 0,
                 address: str | None = None, num_cpus: int | None = None, max_consecutive_failures: int = 3,
                 local_channel: bool = True):
        self._workers: list[_WorkerHandle] = []
        self._holds_ray = False
        self.env_spec = spec
        self.num_envs = num_envs
        self._blocks = split_envs(num_envs, num_workers)
        self._sizes = [len(b) for b in self._blocks]
        self._seed = seed
        self.max_consecutive_failures = max_consecutive_failures
        self.local_channel = local_channel
        self.restarts = [0] * num_workers  # replacements per worker, for logs and tests
        self._failures = [0] * num_workers  # consecutive failed steps per worker
        self._lost: set[int] = set()  # workers that failed outside a step, replaced at the next step
        self._stepping = False
        self._authkey = secrets.token_bytes(32)
        _acquire_ray(address, num_cpus)
        self._holds_ray = True
        try:
            self._worker_cpus = min(1.0, ray.cluster_resources().get("CPU", 1.0) / num_workers)
            self._actor_class = ray.remote(RolloutWorker).options(
                num_cpus=self._worker_cpus, scheduling_strategy="SPREAD", max_restarts=0,
                enable_task_events=False,
                # Ray runs workers at niceness 15 by default; rollout workers are the run's main work and
                # should not lose their cores to any other process (the async and SB3 back-ends run at 0).
                runtime_env={"env_vars": {"RAY_worker_niceness": "0"}})
            # Client mode (ray://) has no driver node: every worker is called through Ray.
            client_mode = ray.util.client.ray.is_connected()
            self._driver_node = None if client_mode else ray.get_runtime_context().get_node_id()
            # All actors are started before any is waited for, so they build their envs in parallel.
            self._workers = [_WorkerHandle(self._new_actor(w), None) for w in range(num_workers)]
            for handle in self._workers:
                self._open_channel(handle)
            # Copied: arrays that come out of Ray's object store (a Box's bounds) are read-only.
            obs_space, act_space = copy.deepcopy(ray.get(self._workers[0].actor.spaces.remote()))
        except BaseException:
            self.close()
            raise
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = batch_space(obs_space, num_envs)
        self.action_space = batch_space(act_space, num_envs)

    def _new_actor(self, w: int, seed: int | None = None) -> Any:
        # Native vector envs are seeded at construction: each block gets its own seed.
        block_seed = self._seed + self._blocks[w].start if seed is None else seed
        return self._actor_class.remote(self.env_spec, self._sizes[w], block_seed)

    def _open_channel(self, handle: _WorkerHandle) -> None:
        """Wait for ``handle``'s worker to start; give it a local channel if it runs on the driver's node."""
        try:
            node = ray.get(handle.actor.node_id.remote(), timeout=WORKER_START_TIMEOUT_S)
        except GetTimeoutError:
            raise RuntimeError(
                f"a rollout worker did not start within {WORKER_START_TIMEOUT_S} s: its request of "
                f"{self._worker_cpus:g} CPU may not fit in the cluster "
                f"({ray.available_resources().get('CPU', 0):g} CPUs free now; other actors or trials may "
                "hold them)") from None
        if self.local_channel and node == self._driver_node:
            address = ray.get(handle.actor.open_channel.remote(self._authkey))
            handle.channel = Client(address, family="AF_UNIX", authkey=self._authkey)

    # ---- Gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every env; ``seed`` and a per-env ``options["level"]`` list are split over the workers."""
        if isinstance(seed, int):
            self._seed = seed
        levels = None
        if options and "level" in options:
            levels = list(options["level"])
            if len(levels) != self.num_envs:
                raise ValueError(f"options['level'] needs one level per env ({self.num_envs}), "
                                 f"got {len(levels)}")
        if self._stepping:  # a step left waiting: collect (and forget) it, so replies stay in order
            self._stepping = False
            for w, handle in enumerate(self._workers):
                if w not in self._lost:
                    with contextlib.suppress(WorkerFailed):
                        handle.result()
        for w in sorted(self._lost):
            self._replace(w)
        self._lost.clear()
        calls = []
        for block in self._blocks:
            if isinstance(seed, int):
                block_seed: Any = seed + block.start
            elif seed is not None:
                block_seed = list(seed[block.start:block.stop])
            else:
                block_seed = None
            block_options = options
            if levels is not None:
                block_options = {**options, "level": levels[block.start:block.stop]}
            calls.append((block_seed, block_options))
        for handle, args in zip(self._workers, calls):
            handle.submit("reset", *args)
        results = [self._reset_result(w, calls[w]) for w in range(len(self._workers))]
        self._failures = [0] * len(self._workers)
        return _concat([r[0] for r in results]), merge_infos([r[1] for r in results], self._sizes)

    def step_async(self, actions: Any) -> None:
        if self._stepping:
            raise RuntimeError("step_async called twice without step_wait")
        for w, (handle, block) in enumerate(zip(self._workers, self._blocks)):
            if w not in self._lost:
                handle.submit("step", _take(actions, block))
        self._stepping = True

    def step_wait(self):
        if not self._stepping:
            raise RuntimeError("step_wait called without step_async")
        self._stepping = False
        results = [self._step_result(w) for w in range(len(self._workers))]
        obs = _concat([r[0] for r in results])
        reward = np.concatenate([r[1] for r in results])
        terminated = np.concatenate([r[2] for r in results])
        truncated = np.concatenate([r[3] for r in results])
        return obs, reward, terminated, truncated, merge_infos([r[4] for r in results], self._sizes)

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call (or read, if not callable) ``name`` on every sub-env; a failed worker's envs answer None."""
        for w, handle in enumerate(self._workers):
            if w not in self._lost:
                handle.submit("call", name, args, kwargs)
        results: list[Any] = []
        for w, size in enumerate(self._sizes):
            values = self._other_result(w, f"call({name!r})")
            results.extend([None] * size if values is None else values)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set ``name`` on every sub-env: ``values`` one per env (a list or tuple), or one for all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs one value per env ({self.num_envs}), got {len(values)}")
        for w, (handle, block) in enumerate(zip(self._workers, self._blocks)):
            if w not in self._lost:
                handle.submit("set_attr", name, list(values[block.start:block.stop]))
        for w in range(len(self._workers)):
            self._other_result(w, f"set_attr({name!r})")

    def close_extras(self, **kwargs: Any) -> None:
        for handle in self._workers:
            handle.close(timeout=10)
        self._workers = []
        if self._holds_ray:
            self._holds_ray = False
            _release_ray()

    # ---- fault tolerance ---------------------------------------------------------------------------

    def _step_result(self, w: int):
        """Worker ``w``'s step result or, if it failed (now or since the last step), a replacement worker's
        first observations with the block's rows marked dropped."""
        if w not in self._lost:
            try:
                result = self._workers[w].result()
                self._failures[w] = 0
                return result
            except WorkerFailed as err:
                self._record_failure(w, err, "step")
        self._lost.discard(w)
        # A fresh seed per replacement: the new episodes differ from the lost ones, reproducibly.
        seed = int(np.random.SeedSequence([self._seed, w, self.restarts[w] + 1]).generate_state(1)[0] >> 1)
        self._replace(w, seed)
        self._workers[w].submit("reset", seed, None)
        obs, info = self._workers[w].result()
        size = self._sizes[w]
        info = {**info, "dropped": np.ones(size, dtype=bool), "_dropped": np.ones(size, dtype=bool)}
        return obs, np.zeros(size), np.zeros(size, dtype=bool), np.zeros(size, dtype=bool), info

    def _other_result(self, w: int, what: str) -> Any:
        """Worker ``w``'s result of a call other than reset/step. A failed worker is killed and left to the
        next step, which replaces it and marks its rows dropped (a reset also replaces it); None then."""
        if w in self._lost:
            return None
        try:
            return self._workers[w].result()
        except WorkerFailed as err:
            self._record_failure(w, err, what)
            self._workers[w].kill()
            self._lost.add(w)
            return None

    def _record_failure(self, w: int, err: WorkerFailed, what: str) -> None:
        """Count a failure of worker ``w``, raise if it is one too many in a row, else log a warning."""
        self._failures[w] += 1
        block = self._blocks[w]
        if self._failures[w] >= self.max_consecutive_failures:
            raise RuntimeError(f"rollout worker {w} (envs {block.start}-{block.stop - 1}) failed "
                               f"{self._failures[w]} times in a row; giving up") from err
        logger.warning("rollout worker %d (envs %d-%d) failed in %s, replacing it and dropping its "
                       "episodes: %s", w, block.start, block.stop - 1, what, _first_line(err))

    def _reset_result(self, w: int, args: tuple):
        """Worker ``w``'s reset result; a failed worker is replaced and its reset retried once."""
        try:
            return self._workers[w].result()
        except WorkerFailed as err:
            logger.warning("rollout worker %d failed at reset, replacing it: %s", w, _first_line(err))
        self._replace(w)
        self._workers[w].submit("reset", *args)
        return self._workers[w].result()

    def _replace(self, w: int, seed: int | None = None) -> None:
        self._workers[w].kill()  # a worker whose env raised is still alive
        self.restarts[w] += 1
        self._workers[w] = _WorkerHandle(self._new_actor(w, seed), None)
        self._open_channel(self._workers[w])

    # ---- diagnostics -------------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Process id of each rollout worker (to profile one, or to kill it in a test)."""
        return ray.get([h.actor.pid.remote() for h in self._workers])

    def worker_nodes(self) -> list[str]:
        """Ray node id of each rollout worker (where the workers landed on a cluster)."""
        return ray.get([h.actor.node_id.remote() for h in self._workers])
