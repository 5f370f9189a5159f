"""Networks shared by the learners: MLPs, observation encoders, SAC's actor and critics, PPO's actor-critic.

Observation encoders take the observation tensor exactly as the env produced it (uint8 images stay
uint8 until they are on the device, which keeps host-to-device copies four times smaller) and return a
flat float feature vector. ``make_encoder`` picks one from the observation space:

* flat (any float or integer ``Box`` that is not an image): cast to float and flatten;
* ``pixels`` (``uint8`` H x W x C with H, W >= 32: Procgen 64x64x3, stacked dm_control frames
  64x64x(3k)): scaled to [0, 1] and fed to a CNN, IMPALA's by default, Nature DQN's or METRA's on request;
* ``grid`` (``uint8`` H x W x C with H or W < 32: MiniGrid's 7x7x3 view or its full W x H x 3 grid):
  the cells hold small category codes (object, colour, state), not intensities, so each code gets a
  learned embedding instead of being scaled like a pixel.

Action spaces are handled in the agents' own modules; this file only builds ``nn.Module`` objects: SAC's
squashed actor and critics, IQL's value and AWR's Gaussian actor, PPO's actor-critic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ENCODER_KINDS = ("auto", "flat", "impala", "nature", "metra", "grid")
PIXEL_ENCODERS = ("impala", "nature", "metra")
# Images at least this many cells on each side are pixels; smaller uint8 images are categorical grids.
MIN_PIXEL_SIDE = 32


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU,
        layer_norm: bool = False) -> nn.Sequential:
    """Linear layers of ``hidden_sizes`` with ``activation`` (LayerNorm before it when asked), then a linear
    output of ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(activation())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def orthogonal_init_(module: nn.Module, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights and constant biases for every Linear/Conv2d in ``module`` (PPO's customary init)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.constant_(layer.bias, bias)
    return module


# ---------------------------------------------------------------------------------------------------
# Observation encoders


class FlatEncoder(nn.Module):
    """Any Box observation as a float vector."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float().flatten(1)


class PixelEncoder(nn.Module):
    """uint8 HWC frames -> [0, 1] floats in CHW -> ``conv`` -> flat features."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.permute(0, 3, 1, 2).float() / 255.0
        return self.conv(x).flatten(1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


def impala_cnn(in_channels: int, channels: Sequence[int] = (16, 32, 32)) -> nn.Sequential:
    """IMPALA's residual CNN (Espeholt et al. 2018), the usual Procgen network: per stage a 3x3 conv, a
    stride-2 max-pool and two residual blocks. Ends with ReLU (the caller adds the linear layer)."""
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.MaxPool2d(3, stride=2, padding=1),
            ResidualBlock(out_channels),
            ResidualBlock(out_channels),
        ]
        in_channels = out_channels
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def nature_cnn(in_channels: int) -> nn.Sequential:
    """The DQN Nature CNN (Mnih et al. 2015): 8x8/4, 4x4/2, 3x3/1 convolutions with ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
    )


def metra_cnn(in_channels: int, depth: int = 48, layers: int = 4) -> nn.Sequential:
    """METRA's (and Dreamer's) pixel encoder: ``layers`` 4x4 stride-2 convolutions with ELU, the depth
    doubling from ``depth`` (48, 96, 192, 384); 64x64 frames end as 384 x 2 x 2 = 1536 features."""
    modules: list[nn.Module] = []
    for i in range(layers):
        out_channels = depth * 2**i
        modules += [nn.Conv2d(in_channels, out_channels, 4, stride=2), nn.ELU()]
        in_channels = out_channels
    return nn.Sequential(*modules)


class GridEncoder(nn.Module):
    """MiniGrid-style grids whose cells hold one small integer code per channel (object, colour, state).

    Each channel's code indexes its own embedding table; a cell's embedding is the sum over channels.
    Two 3x3 convolutions and a linear layer follow. This treats codes as categories (door != 2 x wall),
    which scaling by 1/255 or feeding raw integers would not."""

    def __init__(self, height: int, width: int, channels: int, vocab_size: int, embed_dim: int = 8,
                 out_dim: int = 256) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("offsets", torch.arange(channels) * vocab_size, persistent=False)
        self.embed = nn.Embedding(channels * vocab_size, embed_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(embed_dim, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        self.out = nn.Sequential(nn.Linear(64 * height * width, out_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        codes = obs.long().clamp(0, self.vocab_size - 1) + self.offsets  # [B, H, W, C]
        cells = self.embed(codes).sum(dim=3)  # [B, H, W, E]
        return self.out(self.conv(cells.permute(0, 3, 1, 2)).flatten(1))


def _is_image(space: gym.spaces.Box) -> bool:
    return space.dtype == np.uint8 and len(space.shape) == 3


def encoder_kind_for(observation_space: gym.Space, kind: str = "auto") -> str:
    """The concrete encoder ``make_encoder`` builds for ``kind`` on this space (``auto`` resolved)."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"the observation encoders need a Box observation space; got {observation_space} "
                         "(flatten Dict observations with an env wrapper)")
    if kind not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder {kind!r}; choose one of: {', '.join(ENCODER_KINDS)}")
    image = _is_image(observation_space)
    pixels = image and min(observation_space.shape[:2]) >= MIN_PIXEL_SIDE
    if kind == "auto":
        return "impala" if pixels else "grid" if image else "flat"
    if kind in PIXEL_ENCODERS and not pixels:
        raise ValueError(f"encoder {kind!r} needs uint8 H x W x C images of at least {MIN_PIXEL_SIDE}x"
                         f"{MIN_PIXEL_SIDE}; got {observation_space}")
    if kind == "grid" and not image:
        raise ValueError(f"encoder 'grid' needs a uint8 H x W x C grid; got {observation_space}")
    return kind


def make_encoder(observation_space: gym.Space, kind: str = "auto") -> tuple[nn.Module, int]:
    """An encoder for ``observation_space`` and its feature size. ``kind``: one of ``ENCODER_KINDS``
    (``auto``: ``impala`` for pixels, ``grid`` for small uint8 grids, ``flat`` otherwise)."""
    kind = encoder_kind_for(observation_space, kind)
    shape = observation_space.shape
    if kind == "flat":
        return FlatEncoder(), int(np.prod(shape))
    if kind == "grid":
        vocab = int(np.max(observation_space.high)) + 1
        encoder: nn.Module = GridEncoder(shape[0], shape[1], shape[2], vocab)
        return encoder, 256
    channels = shape[2]
    if kind == "impala":
        cnn = impala_cnn(channels)
    elif kind == "nature":
        cnn = nature_cnn(channels)
    else:
        cnn = metra_cnn(channels)
    with torch.no_grad():
        conv_dim = cnn(torch.zeros(1, channels, shape[0], shape[1])).flatten(1).shape[1]
    if kind == "metra":  # METRA feeds the conv features straight to its MLPs
        return PixelEncoder(cnn), conv_dim
    head = nn.Sequential(nn.Flatten(), nn.Linear(conv_dim, 256), nn.ReLU())
    return PixelEncoder(nn.Sequential(cnn, head)), 256


# ---------------------------------------------------------------------------------------------------
# SAC: squashed Gaussian actor and Q critics. Both take an optional ``context`` vector (a skill, a goal)
# that is concatenated to the encoded observation, so [obs, z] policies work with pixel observations.


def tanh_log_abs_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u) / du| = log(1 - tanh(u)^2), written as 2 (log 2 - u - softplus(-2u)) so it stays
    finite where tanh(u) rounds to +-1."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


def squashed_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)), summed over the last axis (change of
    variables: log p(a) = log N(u) - log |da/du|)."""
    gaussian = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    return (gaussian - tanh_log_abs_det_jacobian(u)).sum(-1)


class SquashedGaussianActor(nn.Module):
    """pi(a | s, context): a diagonal Gaussian squashed by tanh into [-1, 1]^d (SAC, Haarnoja et al. 2018).

    Actions are in the normalised box [-1, 1]^d; the agent maps them affinely to the env's bounds. Log
    probabilities are densities in the normalised box, so a target entropy of -|A| means the same whatever
    the env's action units. log_std is squashed smoothly into [LOG_STD_MIN, LOG_STD_MAX]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, encoder: nn.Module, feature_dim: int, context_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(feature_dim + context_dim, hidden_sizes, 2 * action_dim)

    def forward(self, obs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the pre-tanh Gaussian."""
        mean, raw = self.trunk(_with_context(self.encoder(obs), context)).chunk(2, dim=-1)
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
        return mean, log_std

    def sample(self, obs: torch.Tensor, context: torch.Tensor | None = None,
               deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in [-1, 1]^d, its log-probability). Reparameterised, so gradients flow to the actor;
        ``deterministic`` returns tanh(mean)."""
        mean, log_std = self(obs, context)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), squashed_gaussian_log_prob(mean, log_std, u)


class QNetwork(nn.Module):
    """Q(s, a, context) for normalised actions a in [-1, 1]^d. ``layer_norm`` and ``activation`` as in ``mlp``
    (IQL-style learners use LayerNorm and GELU; SAC the defaults)."""

    def __init__(self, encoder: nn.Module, feature_dim: int, context_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int], layer_norm: bool = False, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(feature_dim + context_dim + action_dim, hidden_sizes, 1, activation, layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        features = _with_context(self.encoder(obs), context)
        return self.trunk(torch.cat([features, action], dim=-1)).squeeze(-1)


def _with_context(features: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    return features if context is None else torch.cat([features, context.float()], dim=-1)


# ---------------------------------------------------------------------------------------------------
# IQL / AWR (agents.iql): a state value and an unsquashed Gaussian policy, both with an optional context.


class ValueNetwork(nn.Module):
    """V(s, context): a scalar per row."""

    def __init__(self, encoder: nn.Module, feature_dim: int, context_dim: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(feature_dim + context_dim, hidden_sizes, 1, activation, layer_norm)

    def forward(self, obs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.trunk(_with_context(self.encoder(obs), context)).squeeze(-1)


class GaussianActor(nn.Module):
    """pi(a | s, context) = N(mean(s, context), exp(log_std)) with a state-independent log std, no tanh: the
    policy of advantage-weighted regression (IQL's AWR extraction, behaviour cloning), whose loss is the
    log-likelihood of dataset actions. Actions live in the normalised box [-1, 1]^d (the caller maps them
    and clips samples). The mean's last layer starts near zero (weights scaled by ``init_scale``)."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, encoder: nn.Module, feature_dim: int, context_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int], layer_norm: bool = False, activation: type[nn.Module] = nn.ReLU,
                 init_scale: float = 1e-2) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(feature_dim + context_dim, hidden_sizes, action_dim, activation, layer_norm)
        with torch.no_grad():
            self.trunk[-1].weight.mul_(init_scale)
            self.trunk[-1].bias.zero_()
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, obs: torch.Tensor, context: torch.Tensor | None = None) -> torch.distributions.Normal:
        mean = self.trunk(_with_context(self.encoder(obs), context))
        std = self.log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX).exp().expand_as(mean)
        return torch.distributions.Normal(mean, std)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log pi(a | s, context), summed over action dimensions."""
        return self(obs, context).log_prob(action).sum(-1)


# ---------------------------------------------------------------------------------------------------
# PPO: one encoder shared by separate actor and critic MLPs.


class ActorCritic(nn.Module):
    """pi(a | s) and V(s) for PPO. Discrete actions: a categorical over logits. Box actions: a diagonal
    Gaussian whose log std is a state-independent parameter (Schulman et al. 2017's continuous setting).

    The encoder is shared (for flat observations it is only a flatten, so actor and critic are then fully
    separate MLPs). Orthogonal init with gain sqrt(2), 0.01 on the policy output so the initial policy is
    near uniform, and 1 on the value output."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int],
                 encoder: str = "auto", activation: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        self.encoder, feature_dim = make_encoder(observation_space, encoder)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            out_dim = int(action_space.n)
        elif isinstance(action_space, gym.spaces.Box):
            self.action_shape = tuple(action_space.shape)
            out_dim = int(np.prod(self.action_shape))
            self.log_std = nn.Parameter(torch.zeros(out_dim))
        else:
            raise ValueError(f"PPO needs a Discrete or Box action space; got {action_space}")
        self.actor = orthogonal_init_(mlp(feature_dim, hidden_sizes, out_dim, activation))
        self.critic = orthogonal_init_(mlp(feature_dim, hidden_sizes, 1, activation))
        orthogonal_init_(self.actor[-1], gain=0.01)
        orthogonal_init_(self.critic[-1], gain=1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.distributions.Distribution, torch.Tensor]:
        """(action distribution, V(s))."""
        features = self.encoder(obs)
        return self.distribution(features), self.critic(features).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.encoder(obs)).squeeze(-1)

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(features)
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        mean = out.reshape(-1, *self.action_shape)
        std = self.log_std.exp().reshape(self.action_shape).expand_as(mean)
        return torch.distributions.Independent(torch.distributions.Normal(mean, std), len(self.action_shape))
