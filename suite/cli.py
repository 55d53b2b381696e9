"""The `normbench` command line: trial, list, export, sweep, leaderboard, simulate, claims, bench.

Heavy modules are imported inside the commands so `normbench --help` is instant.
Bad input exits with status 2 and one line naming the field, the value and
what is allowed, before anything is written.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

from suite.analysis.claims import cli as claims_cli
from suite.analysis.leaderboard import cli as leaderboard_cli
from suite.core.errors import ConfigError
from suite.results import schema
from suite.sweep import cli as sweep_cli
from suite.tools.bench import cli as bench_cli
from suite.tools.simulate import cli as simulate_cli

DEFAULT_OUT = Path("results") / "local"


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if pct:
        return f"{100 * value:.2f}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_summary(row: dict[str, Any], trial_dir: Path, out: Path) -> None:
    """The final summary a user reads after a trial."""
    lines = [
        f"trial      {row.get('trial_id')}  [{row.get('status')}]",
        f"setup      {row.get('method')} | {row.get('backbone')} | {row.get('dataset')} | "
        f"intervention {row.get('intervention')}"
        f" | {row.get('epochs_completed')}/{row.get('epochs')} epochs",
    ]
    if row.get("error"):
        lines.append(f"error      {row['error']}")
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
        if any(schema.knn(k, "val") in row for k in ks):
            lines.append(
                "val kNN    "
                + "   ".join(f"k={k}: {_fmt(row.get(schema.knn(k, 'val')), True)}" for k in ks)
                + "   (held-out part of the training set)"
            )
    lines.append(f"linear     top-1: {_fmt(row.get('linear_top1'), True)}")
    lines.append(
        f"emb norm   train (last epoch) {_fmt(row.get('emb_norm_mean'))} ± {_fmt(row.get('emb_norm_std'))}"
        f"   test {_fmt(row.get('test_emb_norm_mean'))} ± {_fmt(row.get('test_emb_norm_std'))}"
    )
    lines.append(
        f"feat norm  train (last epoch) {_fmt(row.get('feat_norm_mean'))} ± {_fmt(row.get('feat_norm_std'))}"
        f"   test {_fmt(row.get('test_feat_norm_mean'))} ± {_fmt(row.get('test_feat_norm_std'))}"
    )
    diag = {
        k: row.get(k)
        for k in (
            "emb_correct_auroc",
            "feat_correct_auroc",
            "emb_ood_auroc",
            "feat_ood_auroc",
            "emb_freq_spearman",
            "feat_freq_spearman",
        )
    }
    shown = {k: v for k, v in diag.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if shown:
        lines.append("norm diag  " + "   ".join(f"{k}: {v:.3f}" for k, v in shown.items()))
    lines.append(
        f"speed      {_fmt(row.get('images_per_s'))} images/s (training)   wall time {_fmt(row.get('wall_time_s'))} s"
    )
    lines.append(f"files      {trial_dir}   tables: {out / 'trials.parquet'} (+ .csv), curves, norm_bins")
    print("\n".join(lines))


def cmd_trial(args: argparse.Namespace) -> int:
    from suite.config import load_config
    from suite.results import store as results
    from suite.trial import checkpoint as ckpt

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        from suite.config.model import resolved_text

        print(resolved_text(cfg))
        print("\ndry run: nothing trained, nothing written")
        return 0
    from suite.tracking.spec import parse_track

    tracking = parse_track(args.track)
    out = Path(args.out)
    trial_dir = out / cfg.trial_id
    existing = (trial_dir / results.RESULT_FILE).is_file() or ckpt.has_checkpoint(trial_dir / "checkpoints" / "last")
    resume_from = None
    if existing and args.resume:
        row = results.read_result(trial_dir)
        if row and row.get("status") == "completed":
            print(f"trial {cfg.trial_id} already completed; showing its recorded results (use --overwrite to re-run)")
            print_summary(row, trial_dir, out)
            return 0
        if ckpt.has_checkpoint(trial_dir / "checkpoints" / "last"):
            resume_from = trial_dir / "checkpoints" / "last"
            print(f"resuming {cfg.trial_id} from {resume_from}")
    elif existing and not args.overwrite:
        raise ConfigError(
            "--out",
            str(out),
            "a directory without this trial, or pass --resume / --overwrite",
            hint=f"{trial_dir} already holds a run of this exact config",
        )

    from suite.trial.train import run_trial

    if cfg.workers > 1:
        print(
            f"note: workers={cfg.workers} takes effect in Ray sweeps (normbench sweep); "
            f"normbench trial trains in one process with the global batch of {cfg.batch_size}"
        )

    if existing and args.overwrite and not args.resume:
        shutil.rmtree(trial_dir)
    tracker = None
    if tracking is not None:
        from suite.tracking.local import LocalTracker

        tracker = LocalTracker(tracking, cfg, trial_dir)
    result = run_trial(
        cfg, trial_dir, resume_from=resume_from, progress=not args.quiet, report=tracker.log_epoch if tracker else None
    )
    if tracker is not None:
        tracker.finish(result)
    row = result.row
    results.collect_results(out)
    print_summary(row, trial_dir, out)
    return 0 if row["status"] == "completed" else 1


def cmd_list(args: argparse.Namespace) -> int:
    from methods import METHODS
    from methods.interventions import INTERVENTION_KINDS
    from suite.config.choices import SUGGESTED_BACKBONES
    from suite.data.specs import NAMED
    from suite.data.splits import DATASET_NAMES

    print("methods (method=NAME; method_args.KEY=VALUE):")
    for name, cls in sorted(METHODS.items()):
        print(f"  {name:<9} {_first_line(sys.modules[cls.__module__].__doc__ or cls.__doc__)}")
        print(
            f"            defaults: optimizer={cls.default_optimizer} lr={cls.default_lr} (per 256) "
            f"weight_decay={cls.default_weight_decay} warmup_epochs={cls.default_warmup_epochs}"
        )
        hp = ", ".join(f"{name}={default!r}" for name, default, _, _ in cls.describe_hparams())
        print(textwrap.fill(f"method_args: {hp}", 100, initial_indent=" " * 12, subsequent_indent=" " * 14))
    print("\ninterventions (intervention=SPEC, joined with +, e.g. cut:3+gradscale:1):")
    for kind, doc in INTERVENTION_KINDS.items():
        print(f"  {kind:<13} {doc}")
    print("\ndatasets (dataset=NAME):")
    for name in DATASET_NAMES:
        spec = NAMED.get(name)
        where = (
            f"HF hub {spec.hub_id}" + (f" ({spec.config})" if spec.config else "") + f", {spec.num_classes} classes"
            if spec
            else "scikit-learn's 1,797 8x8 digits, built in, no download"
        )
        print(f"  {name:<14} {where}")
    print("  hf:ID[:CONFIG] | parquet:PATH | imagefolder:PATH   (see README)")
    print("\nsuggested backbones (backbone=NAME; any timm model name works):")
    for name, doc in SUGGESTED_BACKBONES.items():
        print(f"  {name:<22} {doc}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from suite.trial.export import CONFIG_FILE, MODEL_FILE, export_trial

    out = export_trial(Path(args.trial_dir), Path(args.out) if args.out else None, overwrite=args.overwrite)
    print(
        f"exported the backbone of {args.trial_dir} to {out}/ ({MODEL_FILE}, {CONFIG_FILE}); "
        f"load it with suite.load_backbone('{out}')"
    )
    return 0


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _trial_epilog() -> str:
    from suite.config import describe_fields

    rows = "\n".join(f"  {n:<17} {kind:<8} {d:<12} {desc}" for n, kind, d, desc in describe_fields())
    return (
        "config keys (key=value overrides the YAML; method_args.KEY=VALUE for method hyper-parameters;\n"
        "science keys make the trial id, run settings are recorded but do not change it):\n"
        + rows
        + "\n\nexample: normbench trial method=byol intervention=cut:3 epochs=20"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normbench",
        description="Self-supervised learning benchmark with embedding-norm interventions and diagnostics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trial = sub.add_parser(
        "trial",
        help="run one trial locally",
        description="Train, evaluate and record one SSL trial.",
        epilog=_trial_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trial.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. method=byol lr=0.1")
    trial.add_argument("--config", "-c", help="YAML trial config")
    trial.add_argument("--out", default=str(DEFAULT_OUT), help=f"results directory (default: {DEFAULT_OUT})")
    trial.add_argument("--resume", action="store_true", help="continue this config's trial from its last checkpoint")
    trial.add_argument(
        "--overwrite", action="store_true", help="delete an earlier run of this exact config and start over"
    )
    trial.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
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
    trial.set_defaults(func=cmd_trial)

    lst = sub.add_parser(
        "list",
        help="list methods, interventions, datasets and backbones",
        description="List methods (with defaults), interventions, datasets and suggested backbones.",
    )
    lst.set_defaults(func=cmd_list)

    export = sub.add_parser(
        "export",
        help="export a trial's backbone (model.safetensors + timm-style config.json)",
        description="Write the backbone of a trial's last checkpoint as model.safetensors (backbone weights\n"
        "only) and config.json (timm pretrained config: architecture, num_features, input size,\n"
        "mean, std; under `normbench`: CIFAR stem flag, trial id, method, intervention, final metrics).",
        epilog="load it with suite.load_backbone(DIR); without the CIFAR stem also with plain timm:\n"
        "  timm.create_model(ARCH, pretrained=True, num_classes=0,\n"
        "                    pretrained_cfg_overlay=dict(file='DIR/model.safetensors'))\n\n"
        "exit status: 0 written, 2 bad input (nothing written).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("trial_dir", metavar="TRIAL_DIR", help="a trial directory, e.g. results/local/<trial_id>")
    export.add_argument("--out", default=None, help="output directory (default: TRIAL_DIR/export)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    export.set_defaults(func=cmd_export)

    for mod in (sweep_cli, leaderboard_cli, simulate_cli, claims_cli, bench_cli):
        before = set(sub.choices)
        mod.add_subparser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"normbench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `normbench list | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("normbench: interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
