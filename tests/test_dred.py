"""DRED (curricula/dred.py) and its level VAE (curricula/level_vae.py) on the maze env's levels."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch

from curricula.dred import DRED, DREDConfig, load_grounding_levels
from curricula.level_vae import interpolate, join_encodings, level_to_onehot, repair, slerp, split_encodings, train_vae
from curricula.level_vae import reconstruction_accuracy as accuracy
from envs.maze import decode, is_solvable

WALL, LAVA = 1, 2
VAE_STEPS = 300  # enough for > 90% cell accuracy on a few dozen levels, a few seconds on one core


@pytest.fixture(scope="module")
def dataset() -> np.ndarray:
    return load_grounding_levels(None, 48)


@pytest.fixture(scope="module")
def trained(dataset):
    return train_vae(dataset, latent_dim=32, hidden_size=256, steps=VAE_STEPS, batch_size=48, lr=2e-3, kl_weight=1.0,
                     seed=0)[0]


@pytest.fixture(scope="module")
def vae_cache(tmp_path_factory) -> str:
    """One VAE per (dataset, settings) for the whole module: DRED teachers after the first load it."""
    return str(tmp_path_factory.mktemp("vae") / "vae.pt")


def small_dred(dataset, seed=0, **overrides) -> DRED:
    cfg = DREDConfig(**{"buffer_size": len(dataset) + 8, "latent_dim": 32, "vae_steps": VAE_STEPS, "anneal_steps": 1000,
                        **overrides})
    return DRED(cfg, seed=seed, dataset=dataset)


def saved_and_loaded(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_valid(level: np.ndarray) -> None:
    maze = decode(level)
    cells = np.asarray(maze.cells)
    for x, y in (maze.agent_pos, maze.goal_pos):
        assert cells[y, x] not in (WALL, LAVA)
    assert tuple(maze.agent_pos) != tuple(maze.goal_pos) and is_solvable(maze)


# --------------------------------------------------------------------------- the VAE
def test_vae_reconstructs_its_training_levels_deterministically(dataset, trained):
    assert accuracy(trained, dataset)["cell_accuracy"] > 0.9
    state = torch.random.get_rng_state()
    again, _ = train_vae(dataset[:8], 8, 32, 5, 8, 2e-3, 1.0, seed=0)
    same, _ = train_vae(dataset[:8], 8, 32, 5, 8, 2e-3, 1.0, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), same.state_dict().values()))
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is left alone


def test_slerp_keeps_endpoints_and_stays_on_the_sphere():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    path = slerp(a, b, torch.linspace(0, 1, 6))
    assert torch.allclose(path[0, 0], a[0]) and torch.allclose(path[0, -1], b[0], atol=1e-6)
    assert torch.allclose(path.norm(dim=-1), torch.full((1, 6), 3.0))
    parallel = slerp(a, a, torch.tensor([0.5]))  # degenerate pair: linear interpolation
    assert torch.allclose(parallel[0, 0], a[0])


def test_interpolations_decode_to_valid_solvable_levels(dataset, trained):
    with torch.no_grad():
        mu, logvar = trained.encode(level_to_onehot(dataset))
    sigma = (0.5 * logvar).exp()
    z = interpolate(mu[:6], sigma[:6], mu[6:12], sigma[6:12], 6, torch.Generator().manual_seed(0))
    assert z.shape == (36, 32)
    levels = repair(trained, z)
    valid = [level for level in levels if level is not None]
    assert len(valid) >= 18  # most interpolations give usable mazes
    for level in valid:
        assert_valid(level)
    assert any(not any(np.array_equal(level, d) for d in dataset) for level in valid)  # new levels, not copies


# --------------------------------------------------------------------------- the DRED teacher
def test_dred_visits_the_dataset_then_evaluates_generated_levels_without_gradient(dataset, vae_cache):
    dataset = dataset[:16]
    teacher = small_dred(dataset, replay_prob=0.5, vae_path=vae_cache)
    levels, learn = teacher.sample_for_training(len(dataset))
    assert learn.all() and {lv.tobytes() for lv in levels} == {lv.tobytes() for lv in dataset}  # each once
    levels, learn = teacher.sample_for_training(400)
    in_buffer = np.array([teacher.buffer.find(level) is not None for level in levels])
    np.testing.assert_array_equal(learn, in_buffer)  # generated levels: evaluation only
    assert 0.4 < learn.mean() < 0.6
    for level in [lv for lv, keep in zip(levels, learn) if not keep][:10]:
        assert_valid(level)


def test_dred_replay_distribution_is_the_grounded_mixture(dataset):
    teacher = small_dred(dataset[:4], buffer_size=8, temperature=0.5, secondary_temperature=1.0, staleness_coef=0.3,
                         anneal_steps=100, vae_steps=0)  # no generation here: an untrained VAE will do
    teacher.sample(4)
    n = 6
    for level in teacher.dataset[:2]:  # two generated stand-ins: copies of dataset levels shifted by one cell code
        teacher.buffer.put(np.where(level[:169] == 0, 3, level[:169]).tolist() + level[169:].tolist())
    buf = teacher.buffer
    buf.seen[:n] = True
    buf.scores[:n] = [0.4, 0.1, 0.3, 0.2, 0.9, 0.5]
    buf.secondary[:n] = [0.0, 0.1, 0.3, 0.0, 0.9, 0.0]
    teacher.samples = 10
    buf.last_sampled[:n] = [9, 5, 0, 8, 9, 9]
    # By hand. Primary (dataset levels 0-3, temperature 0.5): scores 0.4, 0.1, 0.3, 0.2 rank 1, 4, 2, 3, weight
    # rank^-2. Secondary (all six, temperature 1): 0.9 ranks 1, 0.3 ranks 2, 0.1 ranks 3, the three zeros tie
    # at rank 4; weight 1 / rank. Staleness (dataset levels only): 10 - last sampled = 1, 5, 10, 2.
    primary = np.array([1, 1 / 16, 1 / 4, 1 / 9, 0, 0]) / (1 + 1 / 16 + 1 / 4 + 1 / 9)
    secondary = np.array([1 / 4, 1 / 3, 1 / 2, 1 / 4, 1, 1 / 4]) / (3 / 4 + 1 / 3 + 1 / 2 + 1)
    stale = np.array([1, 5, 10, 2, 0, 0]) / 18
    for steps, c in ((0, 0.0), (50, 0.5), (100, 1.0), (500, 1.0)):
        teacher.env_steps = steps
        assert teacher.coef == c
        expected = 0.7 * ((1 - c) * primary + c * secondary) + 0.3 * stale
        np.testing.assert_allclose(teacher.replay_weights(), expected / expected.sum(), rtol=1e-12)
    assert teacher.replay_weights()[4] > teacher.replay_weights()[5]  # the grounded score counts at c = 1


def test_dred_never_evicts_dataset_levels_and_admits_only_grounded_generated_levels(dataset, vae_cache):
    teacher = small_dred(dataset[:16], buffer_size=20, replay_prob=0.3, vae_path=vae_cache)
    rng = np.random.default_rng(0)
    for _ in range(60):
        levels = teacher.sample(5)
        returns = rng.choice([0.0, 0.8], size=5)
        teacher.update(levels, rng.random(5), returns=returns, lengths=np.full(5, 20))
        protected = teacher.buffer.protected[: len(teacher.buffer)]
        assert protected.sum() == 16 and all(teacher.buffer.find(level) is not None for level in teacher.dataset)
    generated = ~teacher.buffer.protected[: len(teacher.buffer)]
    assert teacher.buffer.full and teacher.accepted > 4  # generated levels came and went
    assert (teacher.buffer.secondary[: len(teacher.buffer)][generated] > 0).all()  # only solved ones entered
    assert teacher.proposed > teacher.accepted
    scalars = teacher.log_scalars()
    assert scalars["generated_in_buffer"] == 4 and 0 < scalars["coef"] <= 1 and scalars["vae_cell_accuracy"] > 0.5


def test_dred_state_dict_round_trip_generates_and_samples_identically(dataset, vae_cache, tmp_path):
    original = small_dred(dataset[:16], buffer_size=24, replay_prob=0.5, vae_path=vae_cache)
    rng = np.random.default_rng(1)
    for _ in range(10):
        levels = original.sample(6)
        original.update(levels, rng.random(6), returns=rng.choice([0.0, 0.5], 6), lengths=np.full(6, 30))
    fresh_state = saved_and_loaded(small_dred(dataset[:16], buffer_size=24, vae_path=vae_cache).state_dict())
    assert fresh_state["candidates"].shape == (0, 0)  # nothing generated yet: still plain tensors
    restored = small_dred(dataset[:16], seed=5, buffer_size=24, replay_prob=0.5, vae_steps=0)  # untrained VAE ...
    restored.load_state_dict(fresh_state)
    assert restored.samples == 0 and not restored.candidates
    restored.load_state_dict(saved_and_loaded(original.state_dict()))  # ... replaced by the saved one
    a_levels, a_learn = original.sample_for_training(40)
    b_levels, b_learn = restored.sample_for_training(40)
    assert all(np.array_equal(a, b) for a, b in zip(a_levels, b_levels)) and np.array_equal(a_learn, b_learn)
    assert original.log_scalars() == restored.log_scalars()
    path = tmp_path / "plot.png"
    restored.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vae_cache_is_written_reloaded_and_checked(dataset, tmp_path):
    path = tmp_path / "vae.pt"
    first = small_dred(dataset[:16], vae_path=str(path), vae_steps=50)
    assert path.exists()
    start = time.perf_counter()
    second = small_dred(dataset[:16], vae_path=str(path), vae_steps=50)
    assert time.perf_counter() - start < 5
    assert all(torch.equal(a, b) for a, b in zip(first.vae.state_dict().values(), second.vae.state_dict().values()))
    with pytest.raises(ValueError, match="other levels or settings"):
        small_dred(dataset[:16], vae_path=str(path), vae_steps=60)


def test_split_and_join_of_encodings_round_trip(dataset):
    np.testing.assert_array_equal(join_encodings(*split_encodings(dataset)), dataset)
