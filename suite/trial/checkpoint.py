"""Checkpoints that resume a trial exactly where it stopped.

A checkpoint is a directory holding ``state.pt`` (model, optimizer, finished
epochs, the curves so far), written atomically. Learning-rate schedule and
per-epoch randomness are pure functions of (seed, epoch, step), so nothing
else is needed to replay the remaining epochs bit for bit on CPU.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from suite.core.errors import ConfigError
from suite.core.files import atomic_write_bytes

STATE_FILE = "state.pt"


@dataclass
class TrainState:
    epoch: int = 0  # last finished epoch
    curves: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0  # time inside training steps
    wall_time_s: float = 0.0  # time of finished epochs, evaluation and checkpoints included
    probe_embedding: Any = None  # the probe set's embeddings at the last evaluation (a CPU tensor)


def save(directory: Path, method: nn.Module, optimizer: torch.optim.Optimizer, cfg, state: TrainState) -> Path:
    directory = Path(directory)
    buf = io.BytesIO()
    torch.save(
        {
            "model": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "trial_id": cfg.trial_id,
            "config": cfg.model_dump(),
            "state": asdict(state),
        },
        buf,
    )
    atomic_write_bytes(directory / STATE_FILE, buf.getvalue())
    return directory


def has_checkpoint(directory: Path) -> bool:
    return (Path(directory) / STATE_FILE).is_file()


def read(directory: Path, field: str = "resume") -> dict[str, Any]:
    """The checkpoint's payload (model state, config, train state), on CPU;
    ``field`` names the user's argument in the error if there is none."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ConfigError(field, str(directory), "a checkpoint directory containing state.pt")
    return torch.load(path, map_location="cpu", weights_only=False)


def load(directory: Path, method: nn.Module, optimizer: torch.optim.Optimizer, cfg) -> TrainState:
    payload = read(directory)
    if payload["trial_id"] != cfg.trial_id:
        raise ConfigError(
            "resume",
            str(directory),
            f"a checkpoint of trial {cfg.trial_id}",
            hint=f"it belongs to {payload['trial_id']}",
        )
    method.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return TrainState(**payload["state"])
