"""The trainer kinds beyond online/offline, each proven with a toy method through ``runners.train.train``:

* phased: a toy with an offline phase then an online phase, crashed right after a checkpoint in either
  phase, resumes in the right phase and step and ends exactly as an uninterrupted run;
* students: a toy teacher with two fixed-behaviour students on hand-made mazes; both play the proposed
  levels, each learns only from its own rows, and the regret is the hand-computed one;
* population: random search over linear policies, evaluated by ``play_episodes`` (see below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore

from agents import AGENTS
from agents.base import Agent, AgentConfig, Phase, Transition
from runners.config import compose_config
from runners.train import TrainHooks, train

# -- registering toy methods --------------------------------------------------------------------------


@pytest.fixture
def register(monkeypatch):
    """Register a toy (config class, agent class) as ``agent=<name>`` for the duration of a test."""

    def add(cfg_cls: type[AgentConfig], agent_cls: type[Agent]) -> str:
        name = cfg_cls.name
        monkeypatch.setitem(AGENTS, name, (cfg_cls, agent_cls))
        ConfigStore.instance().store(group="agent", name=name, node=cfg_cls(name=name))
        return name

    return add


class Crash(Exception):
    """Stands in for the process being killed right after a checkpoint was written."""


class CrashAt(TrainHooks):
    def __init__(self, step: int) -> None:
        self.crash_step = step

    def on_checkpoint(self, step: int, path: Path) -> None:
        if step == self.crash_step:
            raise Crash(step)


def final_state(run_dir: Path) -> dict[str, Any]:
    from runners.checkpoint import latest_checkpoint, load_checkpoint

    return load_checkpoint(latest_checkpoint(run_dir))


# -- phased -------------------------------------------------------------------------------------------


@dataclass
class ToyPhasedConfig(AgentConfig):
    name: str = "toy_phased"
    offline_steps: int = 40


class ToyPhasedAgent(Agent):
    """Counts what each phase did: gradient steps (offline only), observed rows (online only), phase starts.
    Its 'learning' is a running sum of dataset rewards and observed rewards, so a replayed or skipped unit
    changes the final state."""

    kind: ClassVar[str] = "phased"

    def __init__(self, cfg, observation_space, action_space, num_envs, device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        self.counts = torch.zeros(3, dtype=torch.int64)  # gradient steps, observed rows, begin_phase calls
        self.total = torch.zeros((), dtype=torch.float64)
        self.current = ""
        self.started: list[str] = []

    def phases(self) -> list[Phase]:
        return [Phase("pretrain", "offline", self.cfg.offline_steps), Phase("finetune", "online", None)]

    def begin_phase(self, name: str) -> None:
        self.current = name
        self.started.append(name)
        self.counts[2] += 1

    def set_dataset(self, dataset, source=None) -> None:
        self.rewards = np.asarray(dataset.rewards, dtype=np.float64)

    def gradient_step(self) -> dict[str, float]:
        assert self.current == "pretrain"
        k = int(torch.randint(len(self.rewards), ()))  # the global torch RNG: checkpointed by the shell
        self.total += self.rewards[k]
        self.counts[0] += 1
        return {"loss": float(self.total)}

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return (torch.rand(len(obs), *self.action_space.shape).numpy() * 2 - 1).astype(self.action_space.dtype)

    def observe(self, batch: Transition) -> dict[str, float]:
        assert self.current == "finetune"
        self.counts[1] += len(batch.reward)
        self.total += float(np.sum(batch.reward))
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.clone(), "total": self.total.clone(), "current": self.current,
                "started": list(self.started)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts, self.total = state["counts"].clone(), state["total"].clone()
        self.current, self.started = state["current"], list(state["started"])


@pytest.fixture(scope="module")
def pointmaze_dataset(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("collect") / "run"
    cfg = compose_config(["agent=random", "env=pointmaze", "steps=300", f"run_dir={run_dir}", "save_dataset=true",
                          "eval.episodes=0", "progress=false"])
    train(cfg)
    return run_dir / "dataset"


def phased_cfg(run_dir: Path, dataset: Path):
    return compose_config(["agent=toy_phased", "env=pointmaze", "steps=120", "runner.num_envs=4", "checkpoint.every=20",
                           "log_every=20", "eval.every=0", "eval.episodes=0", "progress=false", f"dataset={dataset}",
                           f"run_dir={run_dir}"])


@pytest.mark.parametrize("crash_step", [20, 80], ids=["in-offline-phase", "in-online-phase"])
def test_phased_toy_resumes_in_the_right_phase_and_step(register, tmp_path, pointmaze_dataset, crash_step):
    register(ToyPhasedConfig, ToyPhasedAgent)
    straight = tmp_path / "straight"
    train(phased_cfg(straight, pointmaze_dataset))
    expected = final_state(straight)
    assert expected["agent"]["counts"].tolist() == [40, 80, 2]  # 40 gradient steps, then 80 env steps online
    assert expected["agent"]["started"] == ["pretrain", "finetune"]
    assert expected["phase"] == {"index": 1, "name": "finetune", "step_in_phase": 80}

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(phased_cfg(crashed, pointmaze_dataset), hooks=CrashAt(crash_step))
    saved = final_state(crashed)
    assert saved["step"] == crash_step
    in_offline = crash_step < 40
    assert saved["phase"]["index"] == (0 if in_offline else 1)
    assert saved["phase"]["step_in_phase"] == (crash_step if in_offline else crash_step - 40)

    result = train(phased_cfg(crashed, pointmaze_dataset))  # the same command resumes
    assert result.steps == 120
    resumed = final_state(crashed)
    assert resumed["agent"]["counts"].tolist() == [40, 80, 2]  # no phase started twice, no unit replayed
    assert resumed["agent"]["started"] == ["pretrain", "finetune"]
    assert resumed["phase"] == expected["phase"]
    if in_offline:  # the offline phase is replayed exactly: same RNG, same dataset rows
        assert float(resumed["agent"]["total"]) == pytest.approx(float(expected["agent"]["total"]), rel=0, abs=1e-9)


def test_phased_toy_needs_a_dataset(register, tmp_path, capsys):
    from runners.cli import run_main

    register(ToyPhasedConfig, ToyPhasedAgent)
    run_dir = tmp_path / "run"
    code = run_main(["agent=toy_phased", "env=pointmaze", "steps=50", f"run_dir={run_dir}", "progress=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "give dataset=DIR" in err and len(err.splitlines()) == 1
    assert not run_dir.exists()


# -- students -----------------------------------------------------------------------------------------

T = 10  # episode cap of the toy mazes
ROLLOUT = 25  # vector steps per student per round


def toy_levels() -> list[np.ndarray]:
    """Even envs: the goal is right in front of the agent (forward solves it in one step). Odd envs: the
    agent faces the outer wall and the goal is in the far corner (forward never reaches it)."""
    from envs.maze import MAZE_SIZE, MazeLevel, encode

    empty = np.zeros((MAZE_SIZE, MAZE_SIZE), dtype=np.int8)
    solvable = MazeLevel(empty, agent_pos=(0, 0), agent_dir=0, goal_pos=(1, 0))
    blocked = MazeLevel(empty, agent_pos=(0, 0), agent_dir=2, goal_pos=(MAZE_SIZE - 1, MAZE_SIZE - 1))
    return [encode(solvable if k % 2 == 0 else blocked) for k in range(4)]


class FixedStudent(Agent):
    """Always the same action; remembers every action it observed (its own rows, if routed right)."""

    def __init__(self, action: int, *args) -> None:
        super().__init__(*args)
        self.action = action
        self.observed: list[int] = []
        self.observe_calls = 0

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.full(len(obs), self.action, dtype=np.int64)

    def observe(self, batch: Transition) -> dict[str, float]:
        self.observed += np.asarray(batch.action).tolist()
        self.observe_calls += 1
        return {}


@dataclass
class ToyTeacherConfig(AgentConfig):
    name: str = "toy_teacher"


class ToyTeacher(Agent):
    """PAIRED's bookkeeping on fixed levels: antagonist always forward, protagonist always turns left;
    regret = max antagonist return - mean protagonist return per level."""

    kind: ClassVar[str] = "students"
    default_num_envs: ClassVar[int] = 4
    rollout_steps = ROLLOUT

    def __init__(self, cfg, observation_space, action_space, num_envs, device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        args = (cfg, observation_space, action_space, num_envs, device)
        self.students = {"protagonist": FixedStudent(0, *args), "antagonist": FixedStudent(2, *args)}
        self.rounds: list[dict[str, Any]] = []

    def propose_levels(self, n: int) -> list[np.ndarray]:
        return toy_levels()[:n]

    def learn_from_round(self, levels, returns) -> dict[str, float]:
        regret = [max(a, default=0.0) - (float(np.mean(p)) if p else 0.0)
                  for a, p in zip(returns["antagonist"], returns["protagonist"], strict=True)]
        self.rounds.append({"levels": [np.asarray(lv).tolist() for lv in levels], "returns": returns, "regret": regret})
        return {"regret": float(np.mean(regret))}

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.students["protagonist"].act(obs, deterministic)


def test_students_toy_regret_is_computed_on_the_same_levels(register, tmp_path, monkeypatch):
    register(ToyTeacherConfig, ToyTeacher)
    built: list[ToyTeacher] = []
    original = ToyTeacher.__init__

    def keep(self, *args) -> None:
        original(self, *args)
        built.append(self)

    monkeypatch.setattr(ToyTeacher, "__init__", keep)
    steps = 2 * ROLLOUT * 4 * 2  # two rounds of two students on four envs
    cfg = compose_config(["agent=toy_teacher", "env=maze", f"env.max_steps={T}", f"steps={steps}", "eval.episodes=0",
                          "progress=false", f"run_dir={tmp_path / 'run'}"])
    result = train(cfg)
    teacher = built[0]
    assert result.steps == steps and len(teacher.rounds) == 2

    solved = 1.0 - 0.9 * 1 / T  # MiniGrid's reward after one step of T
    for rnd in teacher.rounds:
        assert rnd["levels"] == [lv.tolist() for lv in toy_levels()]
        antagonist, protagonist = rnd["returns"]["antagonist"], rnd["returns"]["protagonist"]
        # Forward on a solvable level: an episode every step, each worth `solved`; on a blocked one the
        # episode hits the cap every T steps with return 0. Turning left never reaches a goal.
        assert [len(r) for r in antagonist] == [ROLLOUT, ROLLOUT // T, ROLLOUT, ROLLOUT // T]
        assert [len(r) for r in protagonist] == [ROLLOUT // T] * 4
        assert antagonist[0] == pytest.approx([solved] * ROLLOUT) and antagonist[1] == [0.0] * (ROLLOUT // T)
        assert protagonist == [[0.0] * (ROLLOUT // T)] * 4
        assert rnd["regret"] == pytest.approx([solved, 0.0, solved, 0.0])
    # Each student learnt only from its own rows: its own action, its own rollout length, both rounds.
    assert teacher.students["antagonist"].observed == [2] * (2 * ROLLOUT * 4)
    assert teacher.students["protagonist"].observed == [0] * (2 * ROLLOUT * 4)
    rows = final_state(tmp_path / "run")
    assert rows["step"] == steps and rows["episodes"] == 2 * (2 * ROLLOUT + 2 * (ROLLOUT // T) + 4 * (ROLLOUT // T))


# -- population ---------------------------------------------------------------------------------------


class LinearPolicies:
    """Row ``k`` plays the linear controller ``a = tanh(W_k s + b_k)`` of genome ``k`` (picklable)."""

    def __init__(self, genomes: list[np.ndarray]) -> None:
        self.genomes = np.stack(genomes)

    def __call__(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        g = self.genomes[rows]
        w, b = g[:, :4].reshape(-1, 2, 2), g[:, 4:]
        return np.tanh(np.einsum("kij,kj->ki", w, np.asarray(obs, dtype=np.float64)) + b).astype(np.float32)


@dataclass
class ToySearchConfig(AgentConfig):
    name: str = "toy_search"
    population: int = 8
    sigma: float = 0.5


class ToyRandomSearch(Agent):
    """Random search over linear policies: perturb the best genome, keep a perturbation that beats it."""

    kind: ClassVar[str] = "population"
    episode_info_keys: ClassVar[tuple[str, ...]] = ("xy",)
    episode_render: ClassVar[str | None] = None

    def __init__(self, cfg, observation_space, action_space, num_envs, device) -> None:
        super().__init__(cfg, observation_space, action_space, num_envs, device)
        self.best = np.zeros(6)
        self.best_return = -np.inf
        self.generation = 0
        self.history: list[list[float]] = []  # every generation's returns

    def ask(self) -> list[np.ndarray]:
        rng = np.random.default_rng([17, self.generation])  # no RNG state to checkpoint
        return [self.best + self.cfg.sigma * rng.standard_normal(6) for _ in range(self.cfg.population)]

    def genome_policy(self, genomes: list[np.ndarray]) -> LinearPolicies:
        return LinearPolicies(genomes)

    def tell(self, genomes, results) -> dict[str, float]:
        assert len(results.returns) == len(genomes) and all(len(p) == n + 1 for p, n in
                                                            zip(results.step_infos["xy"], results.lengths, strict=True))
        self.history.append(results.returns.tolist())
        k = int(np.argmax(results.returns))
        if results.returns[k] > self.best_return:
            self.best, self.best_return = genomes[k], float(results.returns[k])
        self.generation += 1
        return {"best_return": self.best_return}

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return LinearPolicies([self.best] * len(obs))(obs, np.arange(len(obs)))

    def state_dict(self) -> dict[str, Any]:
        return {"best": torch.as_tensor(self.best), "best_return": self.best_return, "generation": self.generation,
                "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, self.cfg.population)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_return = state["best"].numpy(), float(state["best_return"])
        self.generation, self.history = int(state["generation"]), state["history"].tolist()


def search_cfg(run_dir: Path, backend: str, steps: int = 48):
    return compose_config(["agent=toy_search", "env=pointmaze", "env.goal=[5.5,5.5]", "env.goal_reward=dense",
                           "env.max_episode_steps=20", f"steps={steps}", "checkpoint.every=16", "eval.episodes=2",
                           "progress=false", f"runner.backend={backend}", "runner.num_workers=2", "ray.num_cpus=2",
                           f"run_dir={run_dir}"])


def test_population_toy_learns_and_is_identical_locally_and_on_ray(register, tmp_path):
    import sys

    from ray import cloudpickle

    register(ToySearchConfig, ToyRandomSearch)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
    local = final_state(train(search_cfg(tmp_path / "sync", "sync")).run_dir)
    history = local["agent"]["history"]
    assert history.shape == (6, 8) and local["step"] == 48 and local["episodes"] == 48
    assert local["env_steps"] == 48 * 20
    # The search climbs: the best genome found beats the first generation's average by far.
    assert local["agent"]["best_return"] > history[0].mean() + 10.0

    remote = final_state(train(search_cfg(tmp_path / "ray", "ray")).run_dir)
    assert torch.equal(remote["agent"]["history"], history)  # the same episodes, played on Ray workers
    assert torch.equal(remote["agent"]["best"], local["agent"]["best"])


def test_population_toy_resumes_the_seed_sequence(register, tmp_path):
    register(ToySearchConfig, ToyRandomSearch)
    straight = final_state(train(search_cfg(tmp_path / "straight", "sync")).run_dir)
    with pytest.raises(Crash):
        train(search_cfg(tmp_path / "crashed", "sync"), hooks=CrashAt(16))
    resumed = final_state(train(search_cfg(tmp_path / "crashed", "sync")).run_dir)
    assert torch.equal(resumed["agent"]["history"], straight["agent"]["history"])
