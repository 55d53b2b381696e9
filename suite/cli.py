"""The `normbench` command line: trial, list, sweep, leaderboard, simulate, bench.

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

from suite.errors import ConfigError

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
        f"setup      {row.get('method')} | {row.get('backbone')} | {row.get('dataset')} | intervention {row.get('intervention')}"
        f" | {row.get('epochs_completed')}/{row.get('epochs')} epochs",
    ]
    if row.get("error"):
        lines.append(f"error      {row['error']}")
    knn_keys = sorted((k for k in row if k.startswith("knn_top1_k")), key=lambda k: -int(k.rsplit("k", 1)[1]))
    if knn_keys:
        lines.append("kNN top-1  " + "   ".join(f"k={k.rsplit('k', 1)[1]}: {_fmt(row[k], True)}" for k in knn_keys))
    lines.append(f"linear     top-1: {_fmt(row.get('linear_top1'), True)}")
    lines.append(f"emb norm   train (last epoch) {_fmt(row.get('emb_norm_mean'))} ± {_fmt(row.get('emb_norm_std'))}"
                 f"   test {_fmt(row.get('test_emb_norm_mean'))} ± {_fmt(row.get('test_emb_norm_std'))}")
    lines.append(f"feat norm  train (last epoch) {_fmt(row.get('feat_norm_mean'))} ± {_fmt(row.get('feat_norm_std'))}"
                 f"   test {_fmt(row.get('test_feat_norm_mean'))} ± {_fmt(row.get('test_feat_norm_std'))}")
    diag = {k: row.get(k) for k in ("emb_correct_auroc", "feat_correct_auroc", "emb_ood_auroc", "feat_ood_auroc",
                                     "emb_freq_spearman", "feat_freq_spearman")}
    shown = {k: v for k, v in diag.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if shown:
        lines.append("norm diag  " + "   ".join(f"{k}: {v:.3f}" for k, v in shown.items()))
    lines.append(f"speed      {_fmt(row.get('images_per_s'))} images/s (training)   wall time {_fmt(row.get('wall_time_s'))} s")
    lines.append(f"files      {trial_dir}   tables: {out / 'trials.parquet'} (+ .csv), curves, norm_bins")
    print("\n".join(lines))


def cmd_trial(args: argparse.Namespace) -> int:
    from suite import checkpoint as ckpt
    from suite import results
    from suite.config import load_config

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    trial_dir = out / cfg.trial_id
    existing = (trial_dir / results.RESULT_FILE).is_file() or ckpt.has_checkpoint(trial_dir / "checkpoints" / "last")
    resume_from = None
    if existing and args.resume:
        row, _, _ = results.load_trial_dir(trial_dir)
        if row and row.get("status") == "completed":
            print(f"trial {cfg.trial_id} already completed; showing its recorded results (use --overwrite to re-run)")
            print_summary(row, trial_dir, out)
            return 0
        if ckpt.has_checkpoint(trial_dir / "checkpoints" / "last"):
            resume_from = trial_dir / "checkpoints" / "last"
            print(f"resuming {cfg.trial_id} from {resume_from}")
    elif existing and not args.overwrite:
        raise ConfigError("--out", str(out), "a directory without this trial, or pass --resume / --overwrite",
                          hint=f"{trial_dir} already holds a run of this exact config")

    from suite.train import run_trial

    if cfg.workers > 1:
        print(f"note: workers={cfg.workers} takes effect in Ray sweeps (normbench sweep); "
              f"normbench trial trains in one process with the global batch of {cfg.batch_size}")

    if existing and args.overwrite and not args.resume:
        shutil.rmtree(trial_dir)
    row = run_trial(cfg, trial_dir, resume_from=resume_from, progress=not args.quiet)
    results.collect_results(out)
    print_summary(row, trial_dir, out)
    return 0 if row["status"] == "completed" else 1


def cmd_list(args: argparse.Namespace) -> int:
    import dataclasses

    from methods import METHODS
    from methods.interventions import INTERVENTION_KINDS
    from suite.backbones import SUGGESTED_BACKBONES
    from suite.data import DATASET_NAMES
    from suite.dataload.specs import NAMED

    print("methods (method=NAME; method_args.KEY=VALUE):")
    for name, cls in sorted(METHODS.items()):
        print(f"  {name:<9} {_first_line(sys.modules[cls.__module__].__doc__ or cls.__doc__)}")
        print(f"            defaults: optimizer={cls.default_optimizer} lr={cls.default_lr} (per 256) "
              f"weight_decay={cls.default_weight_decay} warmup_epochs={cls.default_warmup_epochs}")
        hp = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Hparams)
                       if f.default is not dataclasses.MISSING)
        print(textwrap.fill(f"method_args: {hp}", 100, initial_indent=" " * 12, subsequent_indent=" " * 14))
    print("\ninterventions (intervention=SPEC, joined with +, e.g. cut:3+gradscale:1):")
    for kind, doc in INTERVENTION_KINDS.items():
        print(f"  {kind:<13} {doc}")
    print("\ndatasets (dataset=NAME):")
    for name in DATASET_NAMES:
        spec = NAMED.get(name)
        where = (f"HF hub {spec.hub_id}" + (f" ({spec.config})" if spec.config else "") + f", {spec.num_classes} classes"
                 if spec else "scikit-learn's 1,797 8x8 digits, built in, no download")
        print(f"  {name:<14} {where}")
    print("  hf:ID[:CONFIG] | parquet:PATH | imagefolder:PATH   (see README)")
    print("\nsuggested backbones (backbone=NAME; any timm model name works):")
    for name, doc in SUGGESTED_BACKBONES.items():
        print(f"  {name:<22} {doc}")
    return 0


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _trial_epilog() -> str:
    from suite.config import describe_fields

    rows = "\n".join(f"  {n:<17} {d:<12} {desc}" for n, d, desc in describe_fields())
    return ("config keys (key=value overrides the YAML; method_args.KEY=VALUE for method hyper-parameters):\n"
            + rows + "\n\nexample: normbench trial method=byol intervention=cut:3 epochs=20")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="normbench", description="Self-supervised learning benchmark with embedding-norm "
                                     "interventions and diagnostics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trial = sub.add_parser("trial", help="run one trial locally", description="Train, evaluate and record one SSL trial.",
                           epilog=_trial_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    trial.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. method=byol lr=0.1")
    trial.add_argument("--config", "-c", help="YAML trial config")
    trial.add_argument("--out", default=str(DEFAULT_OUT), help=f"results directory (default: {DEFAULT_OUT})")
    trial.add_argument("--resume", action="store_true", help="continue this config's trial from its last checkpoint")
    trial.add_argument("--overwrite", action="store_true", help="delete an earlier run of this exact config and start over")
    trial.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    trial.set_defaults(func=cmd_trial)

    lst = sub.add_parser("list", help="list methods, interventions, datasets and backbones",
                         description="List methods (with defaults), interventions, datasets and suggested backbones.")
    lst.set_defaults(func=cmd_list)

    for module in ("suite.sweep.cli", "suite.leaderboard.cli", "suite.simulate.cli", "suite.bench.cli"):
        try:
            mod = __import__(module, fromlist=["add_subparser"])
        except ImportError:  # pragma: no cover - only while a part is being developed
            continue
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
