"""Train your own model with splatnet's trainer: a model, its config dataclass, a data source and
a task are all the trainer needs (docs/training.md, "Your own model"). Everything here is tiny
and deterministic, so the trainer's tests use it too.

    python examples/train_custom_model.py schedule.steps=20 log.dir=runs/tiny
    torchrun --nproc_per_node 2 examples/train_custom_model.py schedule.steps=20 log.dir=runs/tiny

runs ``splatnet.train.main`` with these pieces, exactly as ``-m splatnet.train`` runs the real
network (DDP, checkpoints, exact resume included).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from splatnet.io import checkpoint
from splatnet.train import StageConfig, TrainConfigBase, main


@dataclass
class TinyConfig:
    dim_in: int = 4
    """Input features."""
    hidden: int = 8
    """Hidden width."""
    dim_out: int = 2
    """Outputs."""
    dropout: float = 0.0
    """Dropout probability (uses the global RNG: exercises RNG handling)."""


class TinyNet(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(config.dim_in, config.hidden), nn.Tanh(),
                                 nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, config.dim_out))
        self.gain = nn.Parameter(torch.ones(config.dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.gain


checkpoint.register_model("tiny", TinyNet, TinyConfig)


@dataclass
class TinyTrainConfig(TrainConfigBase):
    arch: str = "tiny"
    model: TinyConfig = field(default_factory=TinyConfig)
    """The stand-in network."""


@dataclass
class TinyBatch:
    x: torch.Tensor  # [B, dim_in]
    y: torch.Tensor  # [B, dim_out]

    def to(self, device) -> TinyBatch:
        return TinyBatch(self.x.to(device), self.y.to(device))


class TinyData:
    """Sample ``i``: x ~ N(0, 1) from a generator seeded by (seed, i); y = W x + 0.1 sin(x)."""

    def __init__(self, dim_in: int = 4, dim_out: int = 2, seed: int = 0) -> None:
        self.seed = seed
        self.w = torch.linspace(-1, 1, dim_in * dim_out).reshape(dim_out, dim_in)

    def get(self, index: int, stage: StageConfig) -> TinyBatch:
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        x = torch.randn(self.w.shape[1], generator=g)
        y = self.w @ x + 0.1 * torch.sin(3 * x[: self.w.shape[0]])
        return TinyBatch(x[None], y[None])

    def collate(self, items: list[TinyBatch]) -> TinyBatch:
        return TinyBatch(torch.cat([b.x for b in items]), torch.cat([b.y for b in items]))


class TinyTask:
    def loss(self, model, batch: TinyBatch, step: int, stage: StageConfig):
        err = model(batch.x) - batch.y
        loss = err.square().mean()
        return loss, {"mae": float(err.detach().abs().mean())}


def run_main(argv: list[str]) -> int:
    return main(argv, config_cls=TinyTrainConfig, data=TinyData(), task=TinyTask())


if __name__ == "__main__":
    sys.exit(run_main(sys.argv[1:]))
