"""``normbench claims``: one verdict per claim of the paper, from results tables.

Import-light: the main CLI imports this module to register the command;
pandas and scipy load only when it runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from suite.core.errors import ConfigError

DESCRIPTION = """Test the paper's claims (Draganov et al., ICML 2025) on one or more results directories
(merged) and give one verdict per claim: holds, does not hold, or inconclusive.

  C1  norms grow during training without weight decay            (curves: emb_norm_mean, wd=0 trials)
  C2a the gradient at the embedding is orthogonal to it          (curves: emb_grad_cos_abs_mean < 1e-3)
  C2b ... and scales as 1/||z||                                  (slope of log grad norm on log norm in -1 ± 0.25)
  C3  larger norms move less on the sphere                       (probe angle change ~ probe norm + lr)
  C4  cut-initialization speeds early convergence                (epochs to target vs none, paired by seed;
                                                                  on the loss and on kNN@20, one row each)
  C5  GradScale speeds convergence                               (as C4, gradscale arms)
  C6  weight decay limits norm growth                            (final emb_norm_mean, lowest vs highest wd)
  C7  the norm predicts kNN correctness                          (emb_correct_auroc > 0.5)
  C8  out-of-distribution samples have smaller norms             (emb_ood_auroc > 0.5)
  C9  rarer classes have smaller norms                           (emb_freq_spearman > 0, long-tailed trials)

A verdict is 'holds' / 'does not hold' only when the 95% t-interval over trials or seed pairs
lies on one side of the threshold, with >= 3 units from >= 3 distinct seeds; otherwise, or when a
column or the claim's condition is absent, or (C4/C5 on kNN, C7) the method is not shown to beat its
own untrained network (95% interval of its kNN@20 gain over seeds above 0), it is 'inconclusive' and
the row says why. claims.md states every
test in full."""

EPILOG = """writes into --out: claims.csv (columns claim, measure, statement, test, verdict, statistic,
value, ci_lo, ci_hi, p_value, n, n_seeds, evidence, reason) and claims.md; `normbench leaderboard`
shows them when claims.csv lies in the results directory (the default --out).

--readme FILE rewrites only the block between FILE's markers (atomically); the README's
"What the reference run shows" is made this way, and a test checks it against the tables.

exit status: 0 written, 2 bad input (missing directory, no trials table, unreadable table)."""


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``claims`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = subparsers.add_parser(
        "claims",
        help="one verdict per claim of the paper, from results tables",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="results directories holding trials.parquet/.csv (+ curves); merged",
    )
    parser.add_argument("--out", default=None, help="output directory (default: the first RESULTS_DIR)")
    parser.add_argument(
        "--readme",
        default=None,
        metavar="FILE",
        help="also rewrite the generated block of FILE (between its 'normbench claims --readme' "
        "markers) from these verdicts and the trials table",
    )
    parser.set_defaults(func=run)
    return parser


def validate(args: argparse.Namespace) -> None:
    """Refuse bad input before reading anything (ConfigError -> exit status 2)."""
    for d in args.results_dirs:
        path = Path(d)
        if not path.is_dir():
            raise ConfigError("RESULTS_DIR", d, "an existing results directory")
        if not any((path / f"trials{s}").is_file() for s in (".parquet", ".csv")):
            raise ConfigError("RESULTS_DIR", d, "a directory containing trials.parquet or trials.csv")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError("--out", args.out, "a directory (or a path that does not exist yet)")
    if args.readme is not None:
        from suite.analysis.claims.readme import BEGIN, END

        path = Path(args.readme)
        text = path.read_text() if path.is_file() else ""
        if not (0 <= text.find(BEGIN) < text.find(END)):
            raise ConfigError(
                "--readme",
                args.readme,
                "an existing file containing the 'normbench claims --readme' begin and end markers, in that order",
            )


def run(args: argparse.Namespace) -> int:
    validate(args)
    from suite.analysis.claims import report
    from suite.analysis.claims.verdicts import evaluate_claims
    from suite.analysis.load import LeaderboardWarning, load_results

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeaderboardWarning)
        results = load_results(args.results_dirs)
    for w in caught:
        print(f"normbench claims: warning: {w.message}", file=sys.stderr)
    claims = evaluate_claims(results.trials, results.curves)
    out = Path(args.out) if args.out is not None else results.dirs[0]
    paths = report.write_claims(claims, out, [str(d) for d in results.dirs])
    if args.readme is not None:
        from suite.analysis.claims.readme import update_readme

        update_readme(Path(args.readme), claims, results.trials, args.results_dirs[0])
        paths["readme"] = Path(args.readme)
    print(report.format_table(claims))
    print("\nfiles: " + ", ".join(str(p) for p in paths.values()))
    return 0
