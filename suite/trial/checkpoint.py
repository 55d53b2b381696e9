"""Checkpoints that resume a trial exactly where it stopped, and survive a failed write.

A trial keeps two: ``checkpoints/last/state.pt`` (the newest) and
``checkpoints/previous/state.pt`` (the one before). A new checkpoint is written
completely (atomic, fsynced) before ``last`` becomes ``previous`` and the new one
``last``, so a full disk or a crash mid-write leaves at least one whole
checkpoint, and `load` falls back to ``previous`` when ``last`` is
missing or unreadable (truncated, foreign). Learning-rate schedule and per-epoch
randomness are pure functions of (seed, epoch, step), so nothing else is needed
to replay the remaining epochs bit for bit on CPU.

One copy of each: a sweep hands Ray a *reference* (`write_reference`: a small file
naming the trial's checkpoints folder and the epoch), not a copy of the state, and
a retried trial follows it back (`follow_reference`). A completed trial keeps only
what export needs (`compact`): the model of its last checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import signal
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from suite.core.errors import ConfigError
from suite.core.files import atomic_path, fsync_directory

STATE_FILE = "state.pt"
LAST, PREVIOUS = "last", "previous"


@dataclass
class TrainState:
    epoch: int = 0  # last finished epoch
    curves: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0  # time inside training steps
    wall_time_s: float = 0.0  # time of finished epochs, evaluation and checkpoints included
    probe_embedding: Any = None  # the probe set's embeddings at the last evaluation (a CPU tensor)


class CheckpointUnreadable(RuntimeError):
    """A checkpoint file that cannot be loaded: truncated, corrupted, or not a normbench checkpoint."""


def save(checkpoints: Path, method: nn.Module, optimizer: torch.optim.Optimizer, cfg, state: TrainState) -> Path:
    """Write the newest checkpoint under ``checkpoints`` (the trial's checkpoints folder); returns its directory."""
    checkpoints = Path(checkpoints)
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
    last, previous, staged = _paths(checkpoints)
    with atomic_path(staged) as tmp:  # complete and on disk before anything older moves
        tmp.write_bytes(buf.getvalue())
    with signals_held():  # Ctrl-C between the two renames would leave no `last` (a crash: `load` reads staged)
        if last.is_file():
            previous.parent.mkdir(parents=True, exist_ok=True)
            os.replace(last, previous)
            fsync_directory(previous.parent)
        os.replace(staged, last)
        fsync_directory(last.parent)
    return last.parent


def _paths(checkpoints: Path) -> tuple[Path, Path, Path]:
    """(last, previous, staged): staged is a complete new checkpoint not yet renamed to last."""
    checkpoints = Path(checkpoints)
    return (
        checkpoints / LAST / STATE_FILE,
        checkpoints / PREVIOUS / STATE_FILE,
        checkpoints / LAST / f".{STATE_FILE}.next",
    )


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (main thread only: Python runs handlers there).

    The block's own handlers note what arrives and the block re-raises it at its end. Masking the
    signals instead would not hold them: the kernel hands a process-directed signal to any thread
    that does not mask it (torch's threads), and Python then runs the handler on the main thread
    anyway. Blocks nest: an inner block re-raises into the outer one's handlers, so the outermost
    one delivers, and a caller can hold them across a save and the bookkeeping that records it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in _HELD_SIGNALS}
    for sig, handler in previous.items():
        if handler is not None:  # None: installed outside Python, which cannot restore it
            signal.signal(sig, lambda signum, _frame: arrived.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)  # runs the restored handler before returning


def has_checkpoint(checkpoints: Path) -> bool:
    return any(path.is_file() for path in _paths(checkpoints))


def newest(checkpoints: Path) -> str:
    """The newest complete checkpoint under ``checkpoints`` as a row records it, ``epoch N (path)``, or ""
    (read from disk: a checkpoint saved after a stop signal counts)."""
    last = _paths(checkpoints)[0]
    if not last.is_file():
        return ""
    try:
        epoch = read(last.parent)["state"]["epoch"]
    except (CheckpointUnreadable, ConfigError, KeyError, TypeError):
        return ""
    return f"epoch {epoch} ({last.parent})"


def read(directory: Path, field: str = "--resume", file: str = STATE_FILE) -> dict[str, Any]:
    """The payload of ``directory/state.pt`` (model state, config, train state), on CPU;
    ``field`` names the user's argument in the error if there is none."""
    path = Path(directory) / file
    if not path.is_file():
        raise ConfigError(field, str(directory), "a checkpoint directory containing state.pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointUnreadable(f"{path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, dict) or not {"model", "optimizer", "trial_id", "state"} <= set(payload):
        raise CheckpointUnreadable(f"{path} is not a normbench checkpoint")
    return payload


REFERENCE_FILE = "checkpoint.json"


def write_reference(into: Path, checkpoint_dir: Path, epoch: int) -> Path:
    """A folder Ray may copy in place of a checkpoint: one small file naming the trial's checkpoints folder
    and the epoch saved (the trial's folder lies on storage every node reads, as a sweep requires)."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    payload = {"checkpoints": str(Path(checkpoint_dir).parent), "epoch": int(epoch)}
    (into / REFERENCE_FILE).write_text(json.dumps(payload))
    return into


def follow_reference(directory: Path) -> Path:
    """The checkpoint a Ray checkpoint stands for: itself when it holds a state (older sweeps copied it),
    else the one of the referenced trial saved at the referenced epoch (``last``, or ``previous`` when the
    trial saved once more after its report); ConfigError when it is gone."""
    directory = Path(directory)
    if (directory / STATE_FILE).is_file() or not (directory / REFERENCE_FILE).is_file():
        return directory
    ref = json.loads((directory / REFERENCE_FILE).read_text())
    checkpoints, epoch = Path(ref["checkpoints"]), int(ref["epoch"])
    last, previous, _ = _paths(checkpoints)
    for path in (last, previous):
        if path.is_file():
            try:
                if read(path.parent)["state"]["epoch"] == epoch:
                    return path.parent
            except CheckpointUnreadable:
                continue
    raise ConfigError(
        "checkpoint", str(checkpoints), f"a checkpoint of epoch {epoch}", hint="the sweep recorded it; it is gone"
    )


def compact(checkpoints: Path) -> None:
    """What a completed trial keeps: the model of its last checkpoint (export reads it), without the
    optimizer state or the previous checkpoint, which only resuming needs."""
    last, previous, staged = _paths(checkpoints)
    if not last.is_file():
        return
    payload = read(last.parent)
    payload.update(optimizer=None, completed=True)
    payload["state"] = {**payload["state"], "probe_embedding": None}
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(last) as tmp:
        tmp.write_bytes(buf.getvalue())
    for path in (previous, staged):
        if path.is_file():
            path.unlink()
    if previous.parent.is_dir() and not any(previous.parent.iterdir()):
        previous.parent.rmdir()


def load(source: Path, method: nn.Module, optimizer: torch.optim.Optimizer, cfg) -> tuple[TrainState, str]:
    """Restore the newest readable checkpoint: ``source`` is a trial's checkpoints folder (``last``, else
    ``previous``) or one checkpoint directory (what Ray hands a retried trial). Returns (state, a note
    when it fell back to ``previous``)."""
    source = Path(source)
    last, previous, staged = _paths(source)
    candidates = [source / STATE_FILE] if (source / STATE_FILE).is_file() else [last, staged, previous]
    problems = []
    for path in candidates:
        if not path.is_file():
            continue
        directory = path.parent
        try:
            payload = read(directory, file=path.name)
        except CheckpointUnreadable as exc:
            problems.append(str(exc))
            continue
        if payload["trial_id"] != cfg.trial_id:
            raise ConfigError(
                "--resume",
                str(directory),
                f"a checkpoint of trial {cfg.trial_id}",
                hint=f"it belongs to {payload['trial_id']}",
            )
        if payload.get("completed"):
            raise ConfigError(
                "--resume",
                str(directory),
                "an unfinished trial's checkpoint",
                hint="the trial completed; its checkpoint keeps the model only",
            )
        method.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        note = (
            f"resumed from {path} (epoch {payload['state']['epoch']}), the newest readable checkpoint: {problems[0]}"
            if problems
            else ""
        )
        return TrainState(**payload["state"]), note
    if problems:
        raise CheckpointUnreadable("; ".join(problems) + "; no earlier checkpoint to fall back to")
    raise ConfigError("--resume", str(source), "a trial folder with a checkpoint (checkpoints/last/state.pt)")
