"""What every ``normbench`` subcommand shares: options, list syntax, exit statuses, messages.

Each command registers itself from its own package (``add_subparser``); these
helpers make them behave alike: ``-q`` on every command, one list syntax
(comma-separated: ``--formats md,csv``), help that ends with the exit statuses,
and one prefix for every message (``normbench: error:``, ``normbench: note:``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence

from methods.errors import suggestion
from suite.core.errors import ConfigError

PROG = "normbench"
OK, FAILED, BAD_INPUT, INTERRUPTED_SIGINT, INTERRUPTED_SIGTERM = 0, 1, 2, 130, 143


def exit_statuses(*lines: str) -> str:
    """The epilog paragraph every command's help ends with."""
    return "exit status:\n" + "\n".join(f"  {line}" for line in lines)


def common_options() -> argparse.ArgumentParser:
    """The options every subcommand takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", help="print only the result (no progress, no notes)")
    parent.add_argument("--debug", action="store_true", help="show the full Python traceback of an error")
    return parent


def add_command(subparsers, name: str, *, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand with the common options and raw-text help (descriptions keep their line breaks)."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        parents=[common_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def csv_list(text: str | None, field: str, allowed: Sequence[str] | None = None) -> list[str] | None:
    """``"md,csv"`` -> ``["md", "csv"]`` (None stays None); values outside ``allowed`` are refused naming ``field``."""
    if text is None:
        return None
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    if not values:
        raise ConfigError(field, text, "a comma-separated list, e.g. " + ",".join((allowed or ["a", "b"])[:2]))
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(field, bad[0], ", ".join(allowed), hint=suggestion(bad[0], allowed))
    return list(dict.fromkeys(values))


def say(kind: str, message: str) -> None:
    """``normbench: <kind>: <message>`` on stderr (kind: error, warning, note)."""
    print(f"{PROG}: {kind}: {message}", file=sys.stderr, flush=True)


def notes(lines: Iterable[str], quiet: bool = False) -> None:
    for line in lines if not quiet else ():
        say("note", line)


def silence_progress_bars() -> None:
    """No progress bars from any library (tqdm, Hugging Face datasets and hub), in this process and the
    processes it starts: for ``-q``, and when the output goes to a log or a pipe, where a carriage-return
    bar is noise."""
    for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ[name] = "1"
    if "datasets" in sys.modules:  # read its environment at import: tell it directly
        sys.modules["datasets"].disable_progress_bars()
