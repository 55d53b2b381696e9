"""Why a sweep trial failed, in one line a user can act on.

Ray wraps a trial's exception several times over (a Tune actor's
``RayTaskError``, Ray Train's ``WorkerGroupError`` with one failure per
worker rank, a controller error); the text Tune stores ends with Ray's own
framing, not with the user's error. This module unwraps to the root cause
and names its type, message and the innermost frames of its traceback.
"""

from __future__ import annotations

import re
import traceback

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
MAX_CHARS = 1000


def _next_cause(exc: BaseException) -> BaseException | None:
    worker_failures = getattr(exc, "worker_failures", None)  # ray.train.WorkerGroupError
    if isinstance(worker_failures, dict) and worker_failures:
        return worker_failures[min(worker_failures)]
    for attr in ("controller_failure", "cause"):  # ray.train.ControllerError, ray.exceptions.RayTaskError
        inner = getattr(exc, attr, None)
        if isinstance(inner, BaseException) and inner is not exc:
            return inner
    return exc.__cause__


def _traceback_text(exc: BaseException) -> str:
    """The traceback a wrapper carries as text (remote exceptions lose theirs)."""
    text = getattr(exc, "traceback_str", None) or getattr(exc, "_error_message", None) or str(exc)
    return text if _FRAME.search(text) else ""


def root_cause(exc: BaseException) -> tuple[BaseException, str]:
    """The innermost exception, and the innermost traceback text seen on the way."""
    text, seen = "", set()
    while id(exc) not in seen:
        seen.add(id(exc))
        text = _traceback_text(exc) or text
        inner = _next_cause(exc)
        if inner is None:
            break
        exc = inner
    return exc, text


def _frames(exc: BaseException, text: str, keep: int) -> list[str]:
    if exc.__traceback__ is not None:
        frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(exc.__traceback__)]
    else:
        # First traceback block: rank 0's snippet in a WorkerGroupError, the
        # remote trace of a RayTaskError.
        blocks = text.split("Traceback (most recent call last):")
        block = blocks[1] if len(blocks) > 1 else text
        frames = [(f, int(line), fn) for f, line, fn in _FRAME.findall(block)]
    return [f"{path}:{line} in {name}" for path, line, name in frames[-keep:]]


def describe_failure(exc: BaseException, keep_frames: int = 3) -> str:
    """``Type: message (at file:line in fn <- ...)``: the root cause first, then
    where it was raised, innermost frame first."""
    root, text = root_cause(exc)
    message = [ln.strip() for ln in str(root).strip().splitlines() if ln.strip()]
    line = f"{type(root).__name__}: {message[0] if message else ''}".rstrip(": ")
    frames = _frames(root, text, keep_frames)
    if frames:
        line += " (at " + " <- ".join(reversed(frames)) + ")"
    return line[:MAX_CHARS]
