"""A failed trial's error names the root cause, however Ray wrapped it."""

from __future__ import annotations

import pytest
from ray.exceptions import RayTaskError
from ray.train import ControllerError, WorkerGroupError

from suite.sweep.failures import describe_failure, root_cause


def _raise_in_training_code():
    raise ValueError("loss went to nan\nsecond line of detail")


def _caught() -> ValueError:
    try:
        _raise_in_training_code()
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_local_exception_names_type_message_and_the_raising_function():
    text = describe_failure(_caught())
    assert text.startswith("ValueError: loss went to nan (at ")
    assert f"{__file__}:" in text and "in _raise_in_training_code <- " in text


def test_worker_group_error_is_unwrapped_to_rank_zero_with_its_remote_traceback():
    snippet = (
        "[Rank 0 Error Snippet]:\nTraceback (most recent call last):\n"
        '  File "/srv/suite/train.py", line 198, in run_trial\n    step()\n'
        '  File "/srv/methods/moco.py", line 42, in enqueue\n    raise IndexError("queue")\n'
        "IndexError: queue full\n[Rank 1 Error Snippet]:\nTraceback (most recent call last):\n"
        '  File "/srv/other.py", line 1, in elsewhere\nKeyError: x\n'
    )
    err = WorkerGroupError(snippet, {1: KeyError("x"), 0: IndexError("queue full")})
    assert describe_failure(err) == (
        "IndexError: queue full (at /srv/methods/moco.py:42 in enqueue <- /srv/suite/train.py:198 in run_trial)"
    )


def test_ray_task_and_controller_wrappers_are_unwrapped():
    inner = _caught()
    wrapped = RayTaskError("train", "remote trace", ControllerError(inner))
    root, _ = root_cause(wrapped)
    assert root is inner
    assert describe_failure(wrapped).startswith("ValueError: loss went to nan (at ")


@pytest.mark.parametrize("exc", [RuntimeError(""), RuntimeError("   ")])
def test_an_empty_message_still_names_the_type(exc):
    assert describe_failure(exc) == "RuntimeError"
