"""A variational auto-encoder over maze levels: DRED's generative model of its grounding dataset.

DRED (Garcin et al., ICML 2024) trains a graph VAE (latent size 1024) on the dataset's training levels and
creates new levels by decoding interpolations between pairs of dataset levels in its latent space. This
module is a documented substitute of the same role, small enough to train on a CPU in seconds:

* Input: a level as one-hot maps, the 13x13 cell codes (EMPTY, WALL, LAVA, MOSS), the agent's cell, its
  direction and the goal's cell (``level_to_onehot``), flattened.
* Encoder: a two-layer MLP (ReLU) to the mean mu and log-variance of a diagonal Gaussian q(z | level).
* Decoder: a two-layer MLP from z to four categorical heads: per-cell tile logits, agent-cell logits
  (169-way), direction logits (4-way) and goal-cell logits (169-way).
* Loss: the negative ELBO, summed cross-entropies of the heads plus ``kl_weight`` * KL(q || N(0, I)),
  minimised with Adam on minibatches of dataset levels (``train_vae``).

Decoding a latent into a level (``repair``): each cell takes its most likely tile; the goal goes to the most
likely cell among the free ones (neither wall nor lava), the agent to the most likely free cell other
than the goal, both cells are cleared (EMPTY), the direction is the most likely one. The result is then
checked by the env (``decode`` must accept it and ``is_solvable`` must hold); levels that fail are
rejected. The graph VAE of the paper decodes a grid graph whose node features are repaired the same way
(most likely object per node); rejecting unsolvable levels is an addition (the reference keeps them and
lets the level sampler learn that they score 0).

Interpolation (``interpolate``): DRED's "polar" scheme, spherical interpolation (slerp) of the means and
linear interpolation of the standard deviations, endpoints included, then z = mu + sigma * eps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from envs.maze import EMPTY, ENCODING_LENGTH, LAVA, MAZE_SIZE, NUM_CODES, WALL, decode, is_solvable

SIZE = MAZE_SIZE  # interior cells per side (13)
N_CELLS = SIZE * SIZE
N_TILES = NUM_CODES  # EMPTY, WALL, LAVA, MOSS
N_DIRS = 4
INPUT_SIZE = N_CELLS * N_TILES + N_CELLS + N_DIRS + N_CELLS


def split_encodings(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encodings [N, 174] -> (cells [N, 169], agent cell [N], direction [N], goal cell [N]); cells are indexed
    row-major, y * 13 + x."""
    levels = np.asarray(levels, dtype=np.int64).reshape(-1, ENCODING_LENGTH)
    cells = levels[:, :N_CELLS]
    ax, ay, adir, gx, gy = (levels[:, N_CELLS + k] for k in range(5))
    return cells, ay * SIZE + ax, adir, gy * SIZE + gx


def join_encodings(cells: np.ndarray, agent: np.ndarray, direction: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The inverse of ``split_encodings``."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, N_CELLS)
    agent, goal = np.asarray(agent, np.int64).reshape(-1), np.asarray(goal, np.int64).reshape(-1)
    tail = np.stack([agent % SIZE, agent // SIZE, np.asarray(direction, np.int64).reshape(-1), goal % SIZE,
                     goal // SIZE], axis=1)
    return np.concatenate([cells, tail], axis=1)


def level_to_onehot(levels: np.ndarray) -> torch.Tensor:
    """[N, INPUT_SIZE] float32: one-hot tiles of every cell, then one-hot agent cell, direction, goal cell."""
    cells, agent, direction, goal = (torch.as_tensor(a) for a in split_encodings(levels))
    parts = [F.one_hot(cells.clamp(0, N_TILES - 1), N_TILES).flatten(1), F.one_hot(agent, N_CELLS),
             F.one_hot(direction, N_DIRS), F.one_hot(goal, N_CELLS)]
    return torch.cat(parts, dim=1).float()


class LevelVAE(nn.Module):
    """MLP encoder q(z | level) and decoder p(level | z) with one categorical head per level part."""

    def __init__(self, latent_dim: int = 64, hidden_size: int = 256) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(INPUT_SIZE, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size),
                                     nn.ReLU(), nn.Linear(hidden_size, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size),
                                     nn.ReLU(), nn.Linear(hidden_size, INPUT_SIZE))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log sigma^2) of q(z | level)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of (tiles [N, 169, 4], agent cell [N, 169], direction [N, 4], goal cell [N, 169])."""
        out = self.decoder(z)
        tiles, agent, direction, goal = out.split([N_CELLS * N_TILES, N_CELLS, N_DIRS, N_CELLS], dim=-1)
        return tiles.view(-1, N_CELLS, N_TILES), agent, direction, goal


def negative_elbo(model: LevelVAE, levels: np.ndarray, kl_weight: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over the batch of the summed cross-entropies plus kl_weight * KL; with the cell accuracy."""
    cells, agent, direction, goal = (torch.as_tensor(a) for a in split_encodings(levels))
    mu, logvar = model.encode(level_to_onehot(levels))
    eps = torch.randn(mu.shape, generator=generator)
    z = mu + (0.5 * logvar).exp() * eps
    tiles_logits, agent_logits, dir_logits, goal_logits = model.decode(z)
    reconstruction = (F.cross_entropy(tiles_logits.reshape(-1, N_TILES), cells.reshape(-1), reduction="sum")
                      + F.cross_entropy(agent_logits, agent, reduction="sum")
                      + F.cross_entropy(dir_logits, direction, reduction="sum")
                      + F.cross_entropy(goal_logits, goal, reduction="sum")) / len(cells)
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    accuracy = (tiles_logits.argmax(-1) == cells).float().mean().item()
    return reconstruction + kl_weight * kl, {"reconstruction": reconstruction.item(), "kl": kl.item(),
                                             "cell_accuracy": accuracy}


def train_vae(levels: np.ndarray, latent_dim: int, hidden_size: int, steps: int, batch_size: int, lr: float,
              kl_weight: float, seed: int) -> tuple[LevelVAE, dict[str, float]]:
    """A VAE fitted to ``levels`` (encodings [N, 174]); deterministic given the seed, and without touching
    torch's global generator. Returns it with the metrics of the last step."""
    levels = np.asarray(levels, dtype=np.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LevelVAE(latent_dim, hidden_size)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        metrics: dict[str, float] = {}
        for step in range(steps):
            batch = torch.randint(len(levels), (min(batch_size, len(levels)),), generator=generator).numpy()
            # KL warm-up over the first half (as CLUTR's VAE): without it the positions collapse to the prior.
            beta = kl_weight * min(1.0, 2.0 * step / max(steps, 1))
            loss, metrics = negative_elbo(model, levels[batch], beta, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return model, metrics


@torch.no_grad()
def reconstruction_accuracy(model: LevelVAE, levels: np.ndarray) -> dict[str, float]:
    """Share of cells, agent cells and goal cells decoded right from the posterior means."""
    cells, agent, _, goal = split_encodings(levels)
    mu, _ = model.encode(level_to_onehot(levels))
    tiles_logits, agent_logits, _, goal_logits = model.decode(mu)
    return {"cell_accuracy": float((tiles_logits.argmax(-1).numpy() == cells).mean()),
            "agent_accuracy": float((agent_logits.argmax(-1).numpy() == agent).mean()),
            "goal_accuracy": float((goal_logits.argmax(-1).numpy() == goal).mean())}


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` ([P, D]) at fractions ``t`` ([K]): [P, K, D].
    Falls back to linear interpolation where the two vectors are (anti)parallel or zero."""
    a_n = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b_n = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.arccos((a_n * b_n).sum(-1).clamp(-1.0, 1.0))[:, None, None]  # [P, 1, 1]
    t = t[None, :, None]
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin.clamp_min(1e-6)
    linear = (1 - t) * a[:, None] + t * b[:, None]
    return torch.where(sin > 1e-6, spherical, linear)


def interpolate(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor, points: int,
                generator: torch.Generator) -> torch.Tensor:
    """Latents along each pair: slerp of the means, lerp of the standard deviations, ``points`` fractions in
    [0, 1] (endpoints included), z = mu + sigma * eps. Returns [P * points, D]."""
    t = torch.linspace(0.0, 1.0, points)
    mu = slerp(mu_a, mu_b, t)
    sigma = (1 - t)[None, :, None] * sigma_a[:, None] + t[None, :, None] * sigma_b[:, None]
    z = mu + sigma * torch.randn(mu.shape, generator=generator)
    return z.reshape(-1, mu_a.shape[-1])


@torch.no_grad()
def repair(model: LevelVAE, z: torch.Tensor) -> list[np.ndarray | None]:
    """Decode latents into levels (see the module docstring); None where no valid, solvable level results."""
    tiles_logits, agent_logits, dir_logits, goal_logits = model.decode(z)
    cells = tiles_logits.argmax(-1).numpy()
    directions = dir_logits.argmax(-1).numpy()
    out: list[np.ndarray | None] = []
    for k in range(len(cells)):
        free = (cells[k] != WALL) & (cells[k] != LAVA)
        if free.sum() < 2:
            out.append(None)
            continue
        goal_scores = np.where(free, goal_logits[k].numpy(), -np.inf)
        goal = int(goal_scores.argmax())
        agent_scores = np.where(free, agent_logits[k].numpy(), -np.inf)
        agent_scores[goal] = -np.inf
        agent = int(agent_scores.argmax())
        level_cells = cells[k].copy()
        level_cells[[agent, goal]] = EMPTY
        level = join_encodings(level_cells, [agent], [directions[k]], [goal])[0]
        out.append(level if valid_level(level) else None)
    return out


def valid_level(level: np.ndarray) -> bool:
    """The env accepts the encoding and the goal is reachable."""
    try:
        maze = decode(level)
    except ValueError:
        return False
    return bool(is_solvable(maze))


def model_state(model: LevelVAE) -> dict[str, Any]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
