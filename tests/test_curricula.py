"""Teachers (curricula/) and the toy testbed they are benchmarked on (envs/toy_teacher.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from curricula import TEACHERS, make_teacher
from curricula.alp_gmm import ALPGMM, ALPGMMConfig, NearestEarlier
from curricula.covar_gmm import CovarGMM, CovarGMMConfig
from curricula.gmm import Mixture
from curricula.riac import RIAC, RIACConfig
from envs.toy_teacher import ToyTestbed

# Box teachers (parameter vectors); the maze teachers are tested in test_plr.py and test_dred.py.
BOX_TEACHERS = [name for name, (_, cls) in TEACHERS.items() if cls.level_kind == "box"]


def play(teacher, episodes: int, competence, batch: int = 10) -> None:
    """Run ``episodes`` episodes in batches; ``competence(levels, episode)`` gives their scores."""
    done = 0
    while done < episodes:
        levels = teacher.sample(min(batch, episodes - done))
        teacher.update(levels, competence(np.array(levels), done))
        done += len(levels)


def left_half_learns(levels: np.ndarray, episode: int) -> np.ndarray:
    """A student that progresses on x < 0.5 (competence rising with time) and is stuck at 0 elsewhere."""
    rising = np.minimum(1.0, (episode + np.arange(len(levels))) / 2000)
    return np.where(levels[:, 0] < 0.5, rising, 0.0)


# --------------------------------------------------------------------------- ALP-GMM
def test_alp_is_the_competence_change_against_the_nearest_earlier_task():
    teacher = ALPGMM(ALPGMMConfig(), [0, 0], [1, 1], seed=0)
    history = [
        ([0.1, 0.1], 0.0),
        ([0.9, 0.9], 0.5),
        ([0.1, 0.9], 0.2),
        ([0.9, 0.1], 0.4),
        ([0.5, 0.5], 0.3),
        ([0.3, 0.3], 0.1),  # warm-up: at most 5 earlier tasks -> 0
        ([0.12, 0.1], 0.6),  # nearest earlier: (0.1, 0.1) with 0.0
        ([0.52, 0.5], 0.1),  # nearest earlier: (0.5, 0.5) with 0.3
        ([0.115, 0.1], 0.65),  # nearest earlier is now the 7th task, (0.12, 0.1) with 0.6
    ]
    teacher.update([p for p, _ in history], [r for _, r in history])
    assert teacher.alps == pytest.approx([0, 0, 0, 0, 0, 0, 0.6, 0.2, 0.05])


def test_nearest_earlier_is_exact_across_kd_tree_rebuilds():
    rng = np.random.default_rng(1)
    points, queries = rng.random((1200, 3)), rng.random((40, 3))
    index = NearestEarlier(3)
    for n, point in enumerate(points):
        index.add(point)
        if n % 30 == 29:  # before, at and after the rebuilds at 500 and 1000 points
            query = queries[n // 30]
            brute = int(np.argmin(((points[: n + 1] - query) ** 2).sum(axis=1)))
            assert index.nearest(query) == brute


def test_gaussian_with_higher_alp_is_sampled_more():
    cfg = ALPGMMConfig(random_task_ratio=0.0)
    teacher = ALPGMM(cfg, [0, 0], [1, 1], seed=0)
    teacher.update(teacher.sample(cfg.fit_rate), np.zeros(cfg.fit_rate))  # past the bootstrap
    teacher.gmm = Mixture(  # hand-set mixture: mean ALP 0.9 around (0.2, 0.2), 0.1 around (0.8, 0.8)
        weights=np.array([0.5, 0.5]),
        means=np.array([[0.2, 0.2, 0.9], [0.8, 0.8, 0.1]]),
        covariances=np.stack([np.diag([1e-3, 1e-3, 1e-4])] * 2),
    )
    levels = np.array(teacher.sample(4000))
    share_high = np.mean(levels[:, 0] < 0.5)
    assert share_high == pytest.approx(0.9, abs=0.02)


def test_fitted_alp_gmm_samples_where_competence_moves():
    cfg = ALPGMMConfig(random_task_ratio=0.0)
    teacher = ALPGMM(cfg, [0, 0], [1, 1], seed=0)
    play(teacher, cfg.fit_rate, left_half_learns)
    assert teacher.gmm is not None and cfg.min_gaussians <= len(teacher.gmm) <= cfg.max_gaussians
    levels = np.array(teacher.sample(2000))
    assert np.mean(levels[:, 0] < 0.5) > 0.85


def test_covar_gmm_picks_gaussians_by_positive_time_competence_covariance():
    teacher = CovarGMM(CovarGMMConfig(random_task_ratio=0.0), [0], [1], seed=0)
    teacher.update(teacher.sample(250), np.zeros(250))
    cov_rising, cov_falling = np.diag([1e-3, 0.1, 0.1]), np.diag([1e-3, 0.1, 0.1])
    cov_rising[1, 2] = cov_rising[2, 1] = 0.05  # competence grows with time here
    cov_falling[1, 2] = cov_falling[2, 1] = -0.05
    teacher.gmm = Mixture(
        np.array([0.5, 0.5]),
        np.array([[0.2, 0.5, 0.5], [0.8, 0.5, 0.5]]),
        np.stack([cov_rising, cov_falling]),
    )
    assert teacher.learning_progress() == pytest.approx([0.05, 0.0])
    levels = np.array(teacher.sample(500))
    assert np.all(levels[:, 0] < 0.5)


def test_riac_splits_and_samples_where_competence_moves():
    teacher = RIAC(RIACConfig(), [0, 0], [1, 1], seed=0)
    play(teacher, 1500, left_half_learns)
    assert len(teacher.regions) > 1
    leaves = [r for r in teacher.regions if not r.children]
    assert all(len(r.competences) <= teacher.cfg.max_region_size + 1 for r in leaves)
    levels = np.array(teacher.sample(2000))
    assert np.mean(levels[:, 0] < 0.5) > 0.75  # uniform would give 0.5


def test_riac_region_alp_compares_the_two_halves_of_its_window():
    teacher = RIAC(RIACConfig(alp_window_size=4), [0], [1], seed=0)
    assert teacher.region_alp([0.3, 0.5]) == 0.0  # two pairs or fewer
    assert teacher.region_alp([0.0, 0.2, 0.6]) == pytest.approx(0.5)  # |mean(0, 0.2) - 0.6|
    assert teacher.region_alp([9.0, 0.0, 0.2, 0.6, 1.0]) == pytest.approx(0.7)  # window of 4: |0.1 - 0.8|


# --------------------------------------------------------------------------- every teacher
@pytest.mark.parametrize("name", BOX_TEACHERS)
def test_samples_stay_inside_bounds(name):
    low, high = np.array([-2.0, 0.0, 10.0]), np.array([3.0, 0.5, 10.0])  # includes a zero-width dimension
    teacher = make_teacher(TEACHERS[name][0](), low, high, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        levels = teacher.sample(100)
        arr = np.array(levels)
        assert arr.shape == (100, 3) and np.all(arr >= low) and np.all(arr <= high)
        teacher.update(levels, np.clip(arr[:, 0] / 3 + rng.normal(0, 0.1, 100), 0, 1))


@pytest.mark.parametrize("name", BOX_TEACHERS)
def test_state_dict_round_trip_samples_identically(name):
    cfg = TEACHERS[name][0]()
    original = make_teacher(cfg, [0, 0], [1, 1], seed=3)
    play(original, 520, left_half_learns)  # past the bootstrap and two mixture fits / RIAC splits
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = make_teacher(cfg, [0, 0], [1, 1], seed=99)  # another seed: the state must override it
    restored.load_state_dict(torch.load(buffer, weights_only=True))  # plain data only

    assert np.array_equal(np.array(original.sample(50)), np.array(restored.sample(50)))
    for teacher in (original, restored):  # both cross the next refit at 750 episodes
        play(teacher, 240, left_half_learns)
    assert np.array_equal(np.array(original.sample(50)), np.array(restored.sample(50)))
    assert original.log_scalars() == restored.log_scalars()


@pytest.mark.parametrize("name", BOX_TEACHERS)
@pytest.mark.parametrize("ndims", [1, 2])
def test_log_scalars_and_plot(name, ndims, tmp_path):
    teacher = make_teacher(TEACHERS[name][0](), np.zeros(ndims), np.ones(ndims), seed=0)
    play(teacher, 300, left_half_learns)
    scalars = teacher.log_scalars()
    assert scalars["episodes"] == 300 and all(isinstance(v, float) for v in scalars.values())
    path = tmp_path / f"{name}.png"
    teacher.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "low, high, words",
    [
        ([0, 1], [1, 0], "low > high in dimension(s) [1]"),
        ([0, 0], [1, 1, 1], "differ in length"),
        ([[0, 0]], [[1, 1]], "1-D"),
        ([], [], "non-empty"),
        ([0, np.nan], [1, 1], "finite"),
        ([0, 0], [1, np.inf], "finite"),
        (["a"], ["b"], "numeric"),
    ],
)
def test_bad_bounds_are_one_line_value_errors(low, high, words):
    for config_class in (TEACHERS[name][0] for name in BOX_TEACHERS):
        with pytest.raises(ValueError) as info:
            make_teacher(config_class(), low, high, seed=0)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_update_checks_levels_and_scores():
    teacher = make_teacher(ALPGMMConfig(), [0, 0], [1, 1], seed=0)
    with pytest.raises(ValueError, match="2 parameters"):
        teacher.update([[0.5, 0.5, 0.5]], [0.0])
    with pytest.raises(ValueError, match="1 levels but 2 scores"):
        teacher.update([[0.5, 0.5]], [0.0, 1.0])
    with pytest.raises(ValueError, match="outside the bounds"):
        teacher.update([[0.5, 1.5]], [0.0])
    teacher.update([[0.5, np.float32(1.0) + 1e-7]], [0.0])  # a float32 round trip is tolerated
    assert teacher.history.tasks[-1][1] == 1.0


def test_scores_are_rescaled_with_the_configured_bounds():
    teacher = ALPGMM(ALPGMMConfig(score_low=-150.0, score_high=350.0), [0], [1], seed=0)
    teacher.update([[0.1], [0.2], [0.3]], [100.0, -400.0, 1000.0])
    assert teacher.competences == pytest.approx([0.5, 0.0, 1.0])


def test_registry_configs_are_structured_configs_with_checked_values():
    for name, (config_class, teacher_class) in TEACHERS.items():
        cfg = config_class()
        assert cfg.name == name and teacher_class.config_class is config_class
        node = OmegaConf.structured(cfg)
        assert OmegaConf.to_object(node) == cfg
    with pytest.raises(ValueError, match="random_task_ratio"):
        make_teacher(ALPGMMConfig(random_task_ratio=1.5), [0], [1], seed=0)
    with pytest.raises(ValueError, match="max_gaussians"):
        make_teacher(CovarGMMConfig(max_gaussians=300), [0], [1], seed=0)
    with pytest.raises(ValueError, match="score_low"):
        make_teacher(RIACConfig(score_low=1.0), [0], [1], seed=0)
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher(ALPGMMConfig(name="alp-gmm"), [0], [1], seed=0)


# --------------------------------------------------------------------------- toy testbed
def test_toy_testbed_follows_the_reference_mastery_rules():
    toy = ToyTestbed(ndims=2, cells_per_dim=10, seed=0)
    assert toy.episode([0.05, 0.15]) == 0.0  # cell (0, 1) is locked: the origin is not at 75 yet
    for _ in range(75):
        toy.episode([0.01, 0.02])  # origin: no neighbour needed
    assert toy.competence[0, 0] == 75 and toy.percent_mastered() == 0.0  # mastered means > 75
    assert toy.episode([0.15, 0.15]) == 0.01  # (1, 1): the origin is a diagonal previous neighbour at >= 75
    assert toy.episode([0.25, 0.05]) == 0.0  # (2, 0): its only previous neighbour, (1, 0), is at 0
    assert toy.episode([0.0, 0.0]) == 0.76 and toy.percent_mastered() == 1.0
    for _ in range(30):
        toy.episode([0.0, 0.0])
    assert toy.competence[0, 0] == 100  # capped
    assert toy.episode([1.0, 1.0]) == 0.0 and toy.cell_of(np.array([1.0, 1.0])) == 99  # 1.0: last cell
    assert toy.cell_of(np.array([0.1, 0.0])) == 10  # a lower face belongs to the upper cell
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        toy.episode([0.5, 1.2])


def test_toy_testbed_previous_neighbours_in_higher_dimensions():
    toy = ToyTestbed(ndims=3, cells_per_dim=[2, 3, 4], seed=0)
    assert toy.competence.shape == (2, 3, 4)
    # Cell (1, 2, 0): neighbours c - s for s in {0,1}^3 \ 0, clipped at 0, the cell itself dropped.
    expected = {(0, 2, 0), (1, 1, 0), (0, 1, 0)}
    cell = np.ravel_multi_index((1, 2, 0), (2, 3, 4))
    got = {np.unravel_index(i, (2, 3, 4)) for i in toy.previous[cell] if i < toy.n_cells}
    assert got == expected


def test_toy_testbed_unlearnable_cells():
    toy = ToyTestbed(ndims=2, cells_per_dim=10, unlearnable_share=0.5, seed=4)
    assert np.count_nonzero(~toy.learnable) == 50 and toy.learnable[0]
    assert toy._all_reachable(toy.learnable)
    for _ in range(80):
        toy.episode([0.0, 0.0])  # master the origin: it unlocks cells (0, 1), (1, 0) and (1, 1)
    next_to_origin = {(0, 1): [0.05, 0.15], (1, 0): [0.15, 0.05], (1, 1): [0.15, 0.15]}
    learnable = {cell: toy.learnable[np.ravel_multi_index(cell, (10, 10))] for cell in next_to_origin}
    assert set(learnable.values()) == {True, False}  # this layout has both kinds next to the origin
    for cell, param in next_to_origin.items():
        assert toy.episode(param) == (0.01 if learnable[cell] else 0.0)
    assert toy.percent_mastered() == pytest.approx(100 / 50)  # out of the learnable cells


def test_alp_gmm_beats_random_on_a_small_toy_testbed():
    """A short curriculum run: ALP-GMM leaves Random behind within a few thousand episodes."""
    scores = {}
    for name in ("random", "alp_gmm"):
        toy = ToyTestbed(ndims=2, cells_per_dim=5, seed=0)
        teacher = make_teacher(TEACHERS[name][0](), toy.low, toy.high, seed=0)
        for _ in range(3000):
            level = teacher.sample(1)
            teacher.update(level, [toy.episode(level[0])])
        scores[name] = toy.percent_mastered()
    assert scores["alp_gmm"] > scores["random"] + 10
