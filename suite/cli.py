"""The `normbench` command line: trial, list, export, sweep, leaderboard, claims, simulate, bench.

Heavy modules are imported inside the commands so `normbench --help` is instant.
Flags and ``key=value`` overrides may come in any order. Bad input exits with
status 2 and one line naming the field, the value and what is allowed, before
anything is written; a trial stopped by a signal records ``interrupted`` and
exits 130 (SIGINT) or 143 (SIGTERM); a trial stopped by its environment (a full
disk, out of memory, an unreadable checkpoint) records ``failed`` and exits 1
with one line saying what to do. Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import signal
import sys
import textwrap
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from suite.analysis.claims import cli as claims_cli
from suite.analysis.leaderboard import cli as leaderboard_cli
from suite.analysis.report import cli as report_cli
from suite.core.cli import (
    BAD_INPUT,
    FAILED,
    INTERRUPTED_SIGINT,
    INTERRUPTED_SIGTERM,
    OK,
    PROG,
    add_command,
    exit_statuses,
    notes,
    say,
    silence_progress_bars,
)
from suite.core.errors import ConfigError
from suite.data import cli as prepare_cli
from suite.results import schema
from suite.sweep import cli as sweep_cli
from suite.tools.bench import cli as bench_cli
from suite.tools.simulate import cli as simulate_cli

DEFAULT_OUT = Path("results") / "local"
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")
SUBCOMMAND_MODULES = (sweep_cli, leaderboard_cli, report_cli, claims_cli, simulate_cli, bench_cli, prepare_cli)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if pct:
        return f"{100 * value:.2f}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _next_commands(argv: list[str], out: Path) -> list[str]:
    """What a user can do next with the trial just shown: the same trial beside it with small initial
    weights (the paper's cut-initialization), the report page of every trial in ``out``, a sweep."""
    kept = [a for a in argv if a not in ("--overwrite", "--resume", "--dry-run") and not a.startswith("intervention=")]
    return [
        f"{shlex.join([PROG, *kept, 'intervention=cut:3'])}   # the same trial with initial weights / 3",
        f"{shlex.join([PROG, 'report', str(out)])}   # a page of every trial in {out}: table, curves, claims",
        f"{PROG} sweep examples/sweeps/smoke_local.yaml   # a Ray sweep of four tiny trials",
    ]


def print_summary(row: dict[str, Any], trial_dir: Path, out: Path, argv: list[str] | None = None) -> None:
    """The final summary a user reads after a trial: its results, the gain over its untrained network
    where epoch 0 was evaluated, its files and (given the command line ``argv``) what to run next."""
    lines = [
        f"trial      {row.get(schema.TRIAL_ID)}  [{row.get(schema.STATUS)}]",
        f"setup      {row.get('method')} | {row.get('backbone')} | {row.get('dataset')} | "
        f"intervention {row.get('intervention')} | {row.get(schema.EPOCHS_COMPLETED)}/{row.get('epochs')} epochs",
    ]
    if row.get(schema.ERROR):
        lines.append(f"error      {row[schema.ERROR]}")
    ks = list(schema.knn_columns(row))
    if ks:
        lines.append("kNN top-1  " + "   ".join(f"k={k}: {_fmt(row[schema.knn(k)], True)}" for k in ks))
        initial = [row.get(schema.knn_init(k)) for k in ks]
        if any(isinstance(v, float) and math.isfinite(v) for v in initial):
            lines.append(
                "untrained  "
                + "   ".join(f"k={k}: {_fmt(v, True)}" for k, v in zip(ks, initial))
                + "   (epoch 0: what the gain is measured against)"
            )
            gains = [
                f"k={k}: {100 * (row[schema.knn(k)] - v):+.2f} points"
                for k, v in zip(ks, initial)
                if isinstance(v, float) and math.isfinite(v) and math.isfinite(row[schema.knn(k)])
            ]
            if gains:
                lines.append("gain       " + "   ".join(gains) + "   (trained minus untrained kNN top-1)")
        if any(schema.knn(k, "val") in row for k in ks):
            lines.append(
                "val kNN    "
                + "   ".join(f"k={k}: {_fmt(row.get(schema.knn(k, 'val')), True)}" for k in ks)
                + "   (held-out part of the training set)"
            )
    lines.append(f"linear     top-1: {_fmt(row.get(schema.LINEAR_TOP1), True)}")
    for vector, word in (("emb", "emb norm "), ("feat", "feat norm")):
        lines.append(
            f"{word}  train (last epoch) {_fmt(row.get(schema.train_norm(vector, 'mean')))} ± "
            f"{_fmt(row.get(schema.train_norm(vector, 'std')))}   test "
            f"{_fmt(row.get(schema.eval_norm('test', vector, 'mean')))} ± "
            f"{_fmt(row.get(schema.eval_norm('test', vector, 'std')))}"
        )
    diag = [schema.diagnostic(v, d) for d in schema.DIAGNOSTICS for v in ("emb", "feat")]
    shown = {k: row.get(k) for k in diag if isinstance(row.get(k), float) and not math.isnan(row[k])}
    if shown:
        lines.append("norm diag  " + "   ".join(f"{k}: {v:.3f}" for k, v in shown.items()))
    lines.append(
        f"speed      {_fmt(row.get(schema.IMAGES_PER_S))} images/s (training), "
        f"{row.get(schema.TORCH_THREADS) or '?'} torch thread(s)   wall time {_fmt(row.get(schema.WALL_TIME))} s"
    )
    lines.append(f"files      {trial_dir}   tables: {out / 'trials.parquet'} (+ .csv), curves, norm_bins, class_norms")
    if argv is not None:
        lines += [f"{'next' if i == 0 else '':<10} {c}" for i, c in enumerate(_next_commands(argv, out))]
    print("\n".join(lines))


# ---------------------------------------------------------------- trial
class _SigtermAsInterrupt:
    """While a trial runs: SIGTERM (what schedulers and spot instances send) stops it like Ctrl-C does."""

    def __enter__(self):
        from suite.trial.train import TrialInterrupted

        def stop(signum, frame):
            raise TrialInterrupted("SIGTERM")

        self.saved = signal.signal(signal.SIGTERM, stop)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self.saved)


def _resume_command(argv: list[str]) -> str:
    kept = [a for a in argv if a not in ("--overwrite", "--resume", "--dry-run")]
    return shlex.join([PROG, *kept, "--resume"])


def cmd_trial(args: argparse.Namespace) -> int:
    from suite.config import load_resolved
    from suite.results import store as results
    from suite.tracking.spec import parse_track
    from suite.trial import checkpoint as ckpt
    from suite.trial.train import CHECKPOINTS, TrialFault, TrialInterrupted, run_trial

    resolved = load_resolved(args.config, args.overrides)  # the trial's one resolution
    cfg = resolved.config
    from suite.trial.runtime import DistContext, resolve_device

    resolve_device(cfg.device, DistContext.detect())  # a device this machine lacks: one line, before any work
    if args.dry_run:
        from suite.config.model import resolved_text
        from suite.trial.train import planned

        machine, data = planned(resolved)
        print(resolved_text(cfg))
        print("\nresolved on this machine (run settings and defaults that depend on it):")
        print("\n".join(f"  {name:<17} {value}" for name, value in machine.items()))
        notes([*resolved.notes, *data], args.quiet)
        print("\ndry run: nothing trained, nothing written")
        return OK
    tracking = parse_track(args.track)
    out = Path(args.out)
    trial_dir = out / cfg.trial_id
    existing = (trial_dir / results.RESULT_FILE).is_file() or ckpt.has_checkpoint(trial_dir / CHECKPOINTS)
    resume_from = None
    if existing and args.resume:
        row = results.read_result(trial_dir)
        if row and row.get(schema.STATUS) == schema.COMPLETED:
            print(f"trial {cfg.trial_id} already completed; showing its recorded results (use --overwrite to re-run)")
            print_summary(row, trial_dir, out, args.argv)
            return OK
        if ckpt.has_checkpoint(trial_dir / CHECKPOINTS):
            resume_from = trial_dir / CHECKPOINTS
            if not args.quiet:
                print(f"resuming {cfg.trial_id} from its last checkpoint in {resume_from}")
    elif existing and not args.overwrite:
        raise ConfigError(
            "--out",
            str(out),
            "a directory without this trial, or pass --resume / --overwrite",
            hint=f"{trial_dir} already holds a run of this exact config",
        )
    if cfg.workers > 1:
        notes(
            [
                f"workers={cfg.workers} takes effect in Ray sweeps (normbench sweep); normbench trial trains in one "
                f"process with the global batch of {cfg.batch_size}"
            ],
            args.quiet,
        )
    if existing and args.overwrite and not args.resume:
        shutil.rmtree(trial_dir)
    tracker = None
    if tracking is not None:
        from suite.tracking.local import LocalTracker

        tracker = LocalTracker(tracking, cfg, trial_dir)
    try:
        with _SigtermAsInterrupt():
            result = run_trial(
                resolved,
                trial_dir,
                resume_from=resume_from,
                progress=not args.quiet,
                report=tracker.log_epoch if tracker else None,
                on_note=None if args.quiet else (lambda n: say("note", n)),
            )
    except (KeyboardInterrupt, TrialInterrupted) as exc:
        signal_name = exc.signal_name if isinstance(exc, TrialInterrupted) else "SIGINT"
        _collect_quietly(results, out)
        row = results.read_result(trial_dir) or {}
        say(
            "interrupted",
            f"{cfg.trial_id} stopped by {signal_name} after epoch {row.get(schema.EPOCHS_COMPLETED, 0)} "
            f"(recorded as interrupted); continue with: {_resume_command(args.argv)}",
        )
        return INTERRUPTED_SIGTERM if signal_name == "SIGTERM" else INTERRUPTED_SIGINT
    except TrialFault as exc:
        _collect_quietly(results, out)
        say("error", str(exc))
        return FAILED
    if tracker is not None:
        tracker.finish(result)
    results.collect_results(out)
    print_summary(result.row, trial_dir, out, args.argv)
    return OK if result.row[schema.STATUS] == schema.COMPLETED else FAILED


def _collect_quietly(results, out: Path) -> None:
    """The tables after a stop: best effort (the disk may be what stopped the trial)."""
    try:
        results.collect_results(out)
    except OSError:
        pass


# ---------------------------------------------------------------- list, export
def config_key_lines(width: int = 100) -> list[str]:
    """Every config key: name, kind, default as a user writes it, what it accepts, what it does."""
    from methods.errors import field_constraints
    from suite.config import TrialConfig, describe_fields

    lines = []
    for name, kind, default, description in describe_fields():
        head = f"  {name:<17} {'science' if kind == 'science' else 'run':<8} default {default}"
        lines.append(head)
        body = f"{description}; accepts {field_constraints(TrialConfig, name)}"
        lines += textwrap.wrap(body, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    from methods import METHODS
    from methods.interventions import INTERVENTION_KINDS
    from suite.config.choices import SUGGESTED_BACKBONES
    from suite.data.specs import NAMED
    from suite.data.splits import DATASET_NAMES

    print("methods (method=NAME; method_args.KEY=VALUE):")
    for name, cls in sorted(METHODS.items()):
        print(f"  {name:<9} {_first_line(sys.modules[cls.__module__].__doc__ or cls.__doc__)}")
        normalizes = "L2-normalized by the loss" if cls.loss_normalizes_embedding else "not L2-normalized (a control)"
        print(f"            embedding: {cls.embedding_description}; {normalizes}")
        print(
            f"            defaults: optimizer={cls.default_optimizer} lr={cls.default_lr} (per 256) "
            f"weight_decay={cls.default_weight_decay} warmup_epochs={cls.default_warmup_epochs}"
        )
        for hp, default, allowed, doc in cls.describe_hparams():
            print(
                textwrap.fill(
                    f"method_args.{hp}={default!r}: {doc or ''} ({allowed})",
                    100,
                    initial_indent=" " * 12,
                    subsequent_indent=" " * 14,
                )
            )
    print("\ninterventions (intervention=SPEC, joined with +, e.g. cut:3+gradscale:1):")
    for kind, doc in INTERVENTION_KINDS.items():
        print(f"  {kind:<13} {doc}")
    print("\ndatasets (dataset=NAME):")
    builtin = {
        "digits": "scikit-learn's 1,797 8x8 digits, built in, no download",
        "digits-synth": "50,000 + 10,000 colour 32 px images made from the digits, built in, no download",
        "digits-colour": "5,000 + 5,000 16 px digits whose colour is the nuisance (the CPU testbed), built in",
    }
    for name in DATASET_NAMES:
        spec = NAMED.get(name)
        where = (
            f"HF hub {spec.hub_id}" + (f" ({spec.config})" if spec.config else "") + f", {spec.num_classes} classes"
            if spec
            else builtin[name]
        )
        print(f"  {name:<14} {where}")
    print("  hf:ID[:CONFIG] | parquet:PATH | imagefolder:PATH   (see the datasets guide)")
    print("\nsuggested backbones (backbone=NAME; any timm model name works):")
    for name, doc in SUGGESTED_BACKBONES.items():
        print(f"  {name:<22} {doc}")
    print("\nconfig keys (key=value; science keys make the trial id, run settings do not):")
    print("\n".join(config_key_lines()))
    return OK


def cmd_export(args: argparse.Namespace) -> int:
    from suite.trial.export import CONFIG_FILE, MODEL_FILE, export_trial

    out = export_trial(Path(args.trial_dir), Path(args.out) if args.out else None, overwrite=args.overwrite)
    print(
        f"exported the backbone of {args.trial_dir} to {out}/ ({MODEL_FILE}, {CONFIG_FILE}); "
        f"load it with suite.load_backbone('{out}')"
    )
    return OK


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _trial_epilog() -> str:
    return (
        "config keys (key=value, in any order with the flags, overrides the YAML; KEY.SUB=VALUE sets one\n"
        "entry of a mapping: method_args.temperature=0.2, augment.flip_p=0):\n"
        + "\n".join(config_key_lines())
        + "\n\nexamples:\n  normbench trial method=byol intervention=cut:3 epochs=20\n"
        "  normbench trial --config my.yaml --out results/x epochs=5 --dry-run\n\n"
        + exit_statuses(
            "0   completed",
            "1   failed (non-finite loss, a full disk, out of memory, ...: the row says why)",
            "2   bad input (nothing written)",
            "130 stopped by SIGINT (Ctrl-C), 143 by SIGTERM: recorded as interrupted; continue with --resume",
        )
    )


# ---------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Self-supervised learning benchmark with embedding-norm interventions and diagnostics.",
        epilog=exit_statuses("0 success, 1 a trial failed, 2 bad input, 130/143 interrupted (see each command)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trial = add_command(
        sub,
        "trial",
        help="run one trial locally",
        description="Train, evaluate and record one SSL trial.",
        epilog=_trial_epilog(),
    )
    trial.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. method=byol lr=0.1")
    trial.add_argument("--config", "-c", help="YAML trial config")
    trial.add_argument("--out", default=str(DEFAULT_OUT), help=f"results directory (default: {DEFAULT_OUT})")
    trial.add_argument("--resume", action="store_true", help="continue this config's trial from its last checkpoint")
    trial.add_argument(
        "--overwrite", action="store_true", help="delete an earlier run of this exact config and start over"
    )
    trial.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config (science and run settings) and the trial id; run nothing",
    )
    trial.add_argument(
        "--track",
        action="append",
        metavar="KIND=TARGET",
        help="log config, per-epoch curves and the final row to mlflow=URI (sqlite:///x.db, a .db file "
        "or a directory), tensorboard=DIR or wandb=offline|online; repeatable",
    )
    trial.set_defaults(func=cmd_trial, takes_overrides=True)

    lst = add_command(
        sub,
        "list",
        help="list methods, interventions, datasets, backbones and config keys",
        description="List methods (with defaults and hyper-parameters), interventions, datasets, "
        "suggested backbones and every config key.",
        epilog=exit_statuses("0 listed"),
    )
    lst.set_defaults(func=cmd_list)

    export = add_command(
        sub,
        "export",
        help="export a trial's backbone (model.safetensors + timm-style config.json)",
        description="Write the backbone of a trial's last checkpoint as model.safetensors (backbone weights\n"
        "only) and config.json (timm pretrained config: architecture, num_features, input size,\n"
        "mean, std; under `normbench`: CIFAR stem flag, trial id, method, intervention, final metrics).",
        epilog="load it with suite.load_backbone(DIR); without the CIFAR stem also with plain timm:\n"
        "  timm.create_model(ARCH, pretrained=True, num_classes=0,\n"
        "                    pretrained_cfg_overlay=dict(file='DIR/model.safetensors'))\n\n"
        + exit_statuses("0 written", "2 bad input (nothing written)"),
    )
    export.add_argument("trial_dir", metavar="TRIAL_DIR", help="a trial directory, e.g. results/local/<trial_id>")
    export.add_argument("--out", default=None, help="output directory (default: TRIAL_DIR/export)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    export.set_defaults(func=cmd_export)

    for module in SUBCOMMAND_MODULES:
        module.add_subparser(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("normbench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    """Flags and ``key=value`` overrides in any order: what argparse leaves over after the flags and
    looks like ``key=value`` joins the overrides of a command that takes them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if _OVERRIDE.match(a)]
    rest = [a for a in extra if not _OVERRIDE.match(a)]
    sub = _subparser(parser, args.command)
    if rest or (overrides and not getattr(args, "takes_overrides", False)):
        (sub or parser).error("unrecognized arguments: " + " ".join(rest or overrides))
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    args.argv = list(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        silence_progress_bars()
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        if args.debug:
            traceback.print_exc()
        say("error", str(err))
        return BAD_INPUT
    except BrokenPipeError:  # `normbench list | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        say("interrupted", "stopped by SIGINT")
        return INTERRUPTED_SIGINT
    except Exception as exc:  # an environment fault outside a trial (disk, memory, a corrupt file)
        if args.debug or not isinstance(exc, (OSError, MemoryError)):
            raise
        say("error", f"{exc} (rerun with --debug for the traceback)")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
