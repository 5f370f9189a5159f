"""DRED: Data-Regularised Environment Design (Garcin, Doran, Guo, Lucas, Albrecht, ICML 2024) on mazes.

UED teachers drift away from the levels the student will meet; DRED grounds the curriculum in a dataset of
training levels drawn from the target distribution (``envs.maze_gen``'s grounding set) and only generates
new levels close to it. As uoe-agents/dred runs it (``mg_ce_dataset_vae_dred.json``):

1. Generative model. A VAE is fitted to the dataset's training levels (``curricula.level_vae``; the paper's
   graph VAE is replaced by a small MLP VAE, see there). New levels come in rounds: pick ``level_pairs``
   pairs of dataset levels uniformly, interpolate ``interpolations_per_pair`` points per pair in latent
   space (slerp of the posterior means, lerp of the standard deviations, endpoints included), sample
   z = mu + sigma * eps and decode; decoded levels are repaired into valid mazes and unsolvable ones are
   rejected.
2. Buffer. The dataset levels fill the level buffer first and are never evicted (``protected``).
   Generated levels are evaluated first: the student plays them once without learning from them (robust
   PLR's rule), and one enters the buffer only if its grounded score is positive (it was solved and its
   value loss is not 0) and not lower than that of the generated level it replaces (the generated level
   least likely to be replayed) once the buffer is full.
3. Scores. Every episode's score is the L1 value loss mean_t |A_t| (``score``). Its *grounded* version, the
   secondary score, is that value loss if the level was ever solved (best return > 0) and 0 otherwise.
4. Replay distribution: P = (1 - rho) [(1 - c) P_primary + c P_secondary] + rho P_C, with
   P_primary the rank prioritisation of the scores over the dataset levels (temperature 0.1),
   P_secondary the rank prioritisation of the grounded scores over the whole buffer (temperature 1.0),
   P_C the staleness distribution over the dataset levels (rho = 0.3), and c annealed linearly from
   ``coef_start`` (0) to ``coef_end`` (1) over ``anneal_steps`` environment steps (the run's length,
   as the reference anneals over all its updates).
5. Sampling. Dataset levels not played yet come first (in random order; they are training levels, learnt
   from). Then each episode replays a buffer level with probability ``replay_prob`` and otherwise plays
   the next generated level (no gradient). The reference alternates a replay rollout of every env with a
   rollout on freshly generated levels (``level_replay_prob`` 1 with the generator applied after every
   replay), i.e. half of its episodes evaluate new levels: ``replay_prob`` = 0.5 does the same per episode.

The student is the suite's feed-forward PPO (the paper's is an LSTM PPO; see ``curricula.plr``).

VAE training happens when the teacher is built: 800 Adam steps on minibatches of 128 of the 512 levels
(about 30 s on one core shared with other jobs; 95% of the cells reconstructed). ``vae_path`` caches the
trained weights (loaded when the file matches the dataset and the model settings, written after training
otherwise). The weights are also part of ``state_dict``, so a resumed run continues with exactly the same
generator.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curricula.base import LevelTeacherConfig
from curricula.level_buffer import LevelBuffer, level_key, rank_weights, staleness_weights
from curricula.level_vae import LevelVAE, interpolate, level_to_onehot, model_state, reconstruction_accuracy, repair, train_vae
from curricula.maze_teacher import RECENT, MazeTeacher, stack_levels
from envs.maze_gen import grounding_levels, load_levels

DRED_SCORES = ("l1vl", "pvl")
MAX_IN_FLIGHT = 4096  # generated levels handed out and not scored yet, remembered for their staleness
GENERATION_TRIES = 4  # rounds of interpolation tried before replaying instead of a generated level


def load_grounding_levels(path: str | None, size: int | None) -> np.ndarray:
    """The training levels DRED is grounded in: a ``.npz`` written by ``envs.maze_gen.save_levels`` or, without
    a path, the built-in grounding set's training split (512 levels, 4 structures); the first ``size`` of
    them if given (a prefix of the built-in set keeps its 4 structures balanced)."""
    if path:
        levels = load_levels(path)
    else:
        levels = grounding_levels("train") if size is None else grounding_levels("train", n_train=size)
    levels = np.asarray(levels, dtype=np.int64)
    return levels if size is None else levels[:size]


@dataclass
class DREDConfig(LevelTeacherConfig):
    name: str = "dred"
    score: str = "l1vl"  # l1vl | pvl: the primary score; the secondary is its grounded version
    buffer_size: int = 4000  # dataset levels plus generated ones
    replay_prob: float = 0.5  # once every dataset level was played: replay, else evaluate a generated level
    temperature: float = 0.1  # beta of P_primary (rank of the scores of dataset levels)
    secondary_temperature: float = 1.0  # beta of P_secondary (rank of the grounded scores of every level)
    staleness_coef: float = 0.3  # rho (staleness of dataset levels)
    coef_start: float = 0.0  # c, the weight of P_secondary, at the start ...
    coef_end: float = 1.0  # ... and after anneal_steps env steps (linear in between)
    anneal_steps: int | None = None  # None: the run's steps (set by the runner); unset outside a run: c = coef_start
    dataset: str | None = None  # .npz of grounding training levels (envs.maze_gen.save_levels); None: built-in set
    dataset_size: int | None = None  # use only the first N dataset levels
    latent_dim: int = 64
    hidden_size: int = 256
    kl_weight: float = 0.1  # beta of the ELBO's KL term (a beta-VAE; 1.0 underfits 512 levels in a short fit)
    vae_steps: int = 800
    vae_batch_size: int = 128
    vae_lr: float = 3e-3
    vae_path: str | None = None  # trained-weights cache: loaded if it matches, written after training if absent
    level_pairs: int = 6  # pairs of dataset levels per generation round
    interpolations_per_pair: int = 6  # latent points per pair, endpoints included

    def score_kind(self) -> str:
        return self.score

    def fit_to_run(self, steps: int) -> None:
        """The annealed mixture runs over the whole run unless ``anneal_steps`` says otherwise."""
        if self.anneal_steps is None:
            self.anneal_steps = int(steps)

    def validate(self) -> None:
        if self.score not in DRED_SCORES:
            raise ValueError(f"unknown score {self.score!r}; choose one of: {', '.join(DRED_SCORES)}")
        for key in ("replay_prob", "staleness_coef", "coef_start", "coef_end"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        for key in ("temperature", "secondary_temperature", "vae_lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("buffer_size", "latent_dim", "hidden_size", "vae_batch_size", "level_pairs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.interpolations_per_pair < 2:
            raise ValueError(f"interpolations_per_pair must be >= 2 (the two endpoints), got {self.interpolations_per_pair}")
        if self.vae_steps < 0 or self.kl_weight < 0:
            raise ValueError(f"vae_steps and kl_weight must be >= 0, got {self.vae_steps} and {self.kl_weight}")
        if self.anneal_steps is not None and self.anneal_steps < 1:
            raise ValueError(f"anneal_steps must be >= 1, got {self.anneal_steps}")
        if self.dataset_size is not None and self.dataset_size < 2:
            raise ValueError(f"dataset_size must be >= 2 (levels are interpolated in pairs), got {self.dataset_size}")


class DRED(MazeTeacher):
    config_class = DREDConfig
    cfg: DREDConfig

    def __init__(self, cfg: DREDConfig, seed: int, generator=None, dataset: np.ndarray | None = None) -> None:
        super().__init__(cfg, seed, generator)
        self.dataset = load_grounding_levels(cfg.dataset, cfg.dataset_size) if dataset is None else \
            np.asarray(dataset, dtype=np.int64)[: cfg.dataset_size]
        if len(self.dataset) < 2:
            raise ValueError(f"DRED needs at least 2 grounding levels, got {len(self.dataset)}")
        if cfg.buffer_size <= len(self.dataset):
            raise ValueError(f"buffer_size ({cfg.buffer_size}) must exceed the {len(self.dataset)} dataset levels")
        self.buffer = LevelBuffer(cfg.buffer_size)
        for level in self.dataset:  # duplicates in a dataset are kept once
            if self.buffer.find(level) is None:
                self.buffer.put(level, protected=True)
        self.vae, self.vae_metrics = self._fit_vae()
        self._encode_dataset()
        self.torch_generator = torch.Generator().manual_seed(self.seed)
        self.candidates: deque[np.ndarray] = deque()  # generated levels waiting to be played
        self.in_flight: dict[bytes, int] = {}
        self.recent_kinds: deque[int] = deque(maxlen=RECENT)  # 0 first visit, 1 replay, 2 generated
        self.generated = 0  # levels decoded
        self.valid = 0  # of which valid and solvable
        self.accepted = 0  # generated levels that entered the buffer
        self.proposed = 0  # generated levels scored

    # ----------------------------------------------------------------- the generative model
    def _vae_fingerprint(self) -> dict[str, Any]:
        cfg = self.cfg
        digest = hashlib.sha256(np.ascontiguousarray(self.dataset).tobytes()).hexdigest()
        return {"dataset_sha256": digest, "latent_dim": cfg.latent_dim, "hidden_size": cfg.hidden_size,
                "kl_weight": cfg.kl_weight, "vae_steps": cfg.vae_steps, "vae_batch_size": cfg.vae_batch_size,
                "vae_lr": cfg.vae_lr, "seed": self.seed}

    def _fit_vae(self) -> tuple[LevelVAE, dict[str, float]]:
        """Train the VAE on the dataset, or load it from the ``vae_path`` cache."""
        cfg = self.cfg
        fingerprint = self._vae_fingerprint()
        path = Path(os.path.expanduser(cfg.vae_path)) if cfg.vae_path else None
        if path is not None and path.exists():
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.get("fingerprint") != fingerprint:
                raise ValueError(f"vae_path {path} holds a VAE trained on other levels or settings; "
                                 "remove it or name another file")
            model = LevelVAE(cfg.latent_dim, cfg.hidden_size)
            model.load_state_dict(cached["weights"])
            model.eval()
        else:
            model, _ = train_vae(self.dataset, cfg.latent_dim, cfg.hidden_size, cfg.vae_steps, cfg.vae_batch_size,
                                 cfg.vae_lr, cfg.kl_weight, self.seed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                torch.save({"fingerprint": fingerprint, "weights": model_state(model)}, tmp)
                os.replace(tmp, path)
        return model, reconstruction_accuracy(model, self.dataset)

    @torch.no_grad()
    def _encode_dataset(self) -> None:
        """Posterior means and standard deviations of every dataset level (the interpolation endpoints)."""
        mu, logvar = self.vae.encode(level_to_onehot(self.dataset))
        self.latent_mu, self.latent_sigma = mu, (0.5 * logvar).exp()

    def _generate(self) -> None:
        """One round: ``level_pairs`` random pairs of dataset levels, ``interpolations_per_pair`` decoded
        interpolations each; the valid, solvable levels not already in the buffer join the candidates."""
        cfg = self.cfg
        picks = self.rng.choice(len(self.dataset), size=2 * cfg.level_pairs, replace=len(self.dataset) < 2 * cfg.level_pairs)
        first, second = picks[: cfg.level_pairs], picks[cfg.level_pairs:][::-1].copy()  # pairs (i, 2n - 1 - i) as dred
        z = interpolate(self.latent_mu[first], self.latent_sigma[first], self.latent_mu[second],
                        self.latent_sigma[second], cfg.interpolations_per_pair, self.torch_generator)
        levels = repair(self.vae, z)
        self.generated += len(levels)
        seen: set[bytes] = set()
        for level in levels:
            if level is None:
                continue
            self.valid += 1
            key = level_key(level)
            if self.buffer.find(level) is None and key not in seen:
                seen.add(key)
                self.candidates.append(level)

    # ----------------------------------------------------------------- sampling
    @property
    def coef(self) -> float:
        """c, the weight of the grounded secondary distribution, annealed linearly over the run."""
        cfg = self.cfg
        if cfg.anneal_steps is None:
            return cfg.coef_start
        return cfg.coef_start + (cfg.coef_end - cfg.coef_start) * min(1.0, self.env_steps / cfg.anneal_steps)

    def replay_weights(self) -> np.ndarray:
        """P over the buffer's slots (0 outside the levels already handed out)."""
        n = len(self.buffer)
        seen, dataset = self.buffer.seen[:n], self.buffer.protected[:n]
        primary_support = seen & dataset
        primary, secondary, stale = np.zeros(n), np.zeros(n), np.zeros(n)
        primary[primary_support] = rank_weights(self.buffer.scores[:n][primary_support], self.cfg.temperature)
        secondary[seen] = rank_weights(self.buffer.secondary[:n][seen], self.cfg.secondary_temperature)
        staleness = self.samples - self.buffer.last_sampled[:n]
        stale[primary_support] = staleness_weights(staleness[primary_support])
        c, rho = self.coef, self.cfg.staleness_coef
        weights = (1.0 - rho) * ((1.0 - c) * primary + c * secondary) + rho * stale
        return weights / weights.sum()

    def _next_level(self) -> tuple[np.ndarray, bool]:
        n = len(self.buffer)
        unvisited = np.flatnonzero(~self.buffer.seen[:n] & self.buffer.protected[:n])
        if unvisited.size:  # dataset levels first (dcd: unseen levels before any replay)
            slot = int(self.rng.choice(unvisited))
            self.buffer.seen[slot] = True
            self.buffer.last_sampled[slot] = self.samples
            self.recent_kinds.append(0)
            return self.buffer.levels[slot].copy(), True
        if self.rng.random() >= self.cfg.replay_prob:
            for _ in range(GENERATION_TRIES):
                if self.candidates:
                    break
                self._generate()
            if self.candidates:
                level = self.candidates.popleft()
                self.in_flight[level_key(level)] = self.samples
                if len(self.in_flight) > MAX_IN_FLIGHT:
                    self.in_flight.pop(next(iter(self.in_flight)))
                self.recent_kinds.append(2)
                return level, False  # evaluated without gradient updates
        slot = int(self.rng.choice(n, p=self.replay_weights()))
        self.buffer.last_sampled[slot] = self.samples
        self.recent_kinds.append(1)
        return self.buffer.levels[slot].copy(), True

    # ----------------------------------------------------------------- scores
    def _observe(self, level: np.ndarray, score: float, ret: float) -> None:
        slot = self.buffer.find(level)
        if slot is None:
            slot = self._insert(level, score, ret)
            if slot is None:
                return
        buffer = self.buffer
        buffer.scores[slot] = score
        buffer.max_returns[slot] = max(buffer.max_returns[slot], ret)
        buffer.secondary[slot] = score if buffer.max_returns[slot] > 0 else 0.0  # grounded value loss
        buffer.seen[slot] = True

    def _insert(self, level: np.ndarray, score: float, ret: float) -> int | None:
        """A slot for a scored generated level whose grounded score is positive: a free one, else the
        generated level least likely to be replayed, if its grounded score is not higher."""
        self.proposed += 1
        handed_out = self.in_flight.pop(level_key(level), self.samples)
        grounded = score if ret > 0 else 0.0
        if grounded <= 0:
            return None
        if not self.buffer.full:
            self.accepted += 1
            return self.buffer.put(level, last_sampled=handed_out)
        n = len(self.buffer)
        weights = np.where(self.buffer.protected[:n], np.inf, self.replay_weights())  # dataset levels stay
        weakest = int(np.argmin(weights))
        if self.buffer.protected[weakest] or self.buffer.secondary[weakest] > grounded:
            return None
        self.accepted += 1
        return self.buffer.put(level, slot=weakest, last_sampled=handed_out)

    # ----------------------------------------------------------------- reporting and state
    def _scalars(self) -> dict[str, float]:
        n = len(self.buffer)
        dataset = self.buffer.protected[:n]
        scalars = {"coef": self.coef, "buffer_size": float(n), "generated_in_buffer": float((~dataset).sum()),
                   "dataset_visited": float(self.buffer.seen[:n][dataset].mean()),
                   "generated": float(self.generated), "accepted": float(self.accepted),
                   "proposed": float(self.proposed), "vae_cell_accuracy": self.vae_metrics["cell_accuracy"]}
        if self.generated:
            scalars["valid_fraction"] = self.valid / self.generated
        if self.recent_kinds:
            kinds = np.array(self.recent_kinds)
            scalars["replay_fraction"] = float(np.mean(kinds == 1))
            scalars["generated_fraction"] = float(np.mean(kinds == 2))
        if self.buffer.seen[:n].all():
            scalars["dataset_mass"] = float(self.replay_weights()[dataset].sum())
        return scalars

    def _plot_levels(self) -> tuple[list[np.ndarray], list[str]]:
        n = len(self.buffer)
        if not self.buffer.seen[:n].any():
            return [], []
        weights = self.replay_weights()
        top = np.argsort(-weights, kind="stable")[:16]
        top = top[weights[top] > 0]
        return ([self.buffer.levels[i] for i in top],
                [f"{'data' if self.buffer.protected[i] else 'gen'} P={weights[i]:.3f} S={self.buffer.scores[i]:.3f}"
                 for i in top])

    def _state(self) -> dict[str, Any]:
        return {
            "buffer": self.buffer.state(),
            "vae": model_state(self.vae),
            "torch_generator": self.torch_generator.get_state(),
            "candidates": stack_levels(list(self.candidates)),
            "recent_kinds": torch.tensor(list(self.recent_kinds), dtype=torch.int64),
            "counts": torch.tensor([self.generated, self.valid, self.accepted, self.proposed], dtype=torch.int64),
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.buffer.load(state["buffer"])
        n_data = int(self.buffer.protected[: len(self.buffer)].sum())
        if n_data != len({level_key(level) for level in self.dataset}):
            raise ValueError(f"state holds {n_data} dataset levels, this teacher's dataset has {len(self.dataset)}")
        self.vae.load_state_dict(state["vae"])
        self.vae.eval()
        self._encode_dataset()
        self.vae_metrics = reconstruction_accuracy(self.vae, self.dataset)
        self.torch_generator.set_state(state["torch_generator"])
        self.candidates = deque(state["candidates"].numpy().astype(np.int64))
        self.recent_kinds = deque(state["recent_kinds"].tolist(), maxlen=RECENT)
        self.generated, self.valid, self.accepted, self.proposed = (int(x) for x in state["counts"].tolist())
        self.in_flight = {}
