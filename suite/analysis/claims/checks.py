"""The checks that gate every intervention comparison, and the doses weight decay is judged at.

* **Protocol**: an arm is compared with the baseline of its own learning rate and warm-up, or the
  comparison is between protocols, not interventions.
* **Manipulation**: did the intervention change what it is meant to change? A ``cut`` arm must start
  with smaller embedding norms than its baseline (its epoch-1 training norm below the baseline's); a
  ``gradscale:p`` arm must boost its gradients (its training norms' p-th power above 1 on average: with
  norms below 1, p = 1 damps them).
* **Collapse**: an arm that ends below its own untrained network on kNN, or whose final loss sits at its
  method's collapsed-network value (`methods.base.SSLMethod.collapse_loss`), learned nothing a speed
  comparison could measure.

A failed check leaves the pair (or trial) out of the verdict and says so with the numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from methods import get_method
from suite.analysis import compare
from suite.analysis.claims.context import Context, num
from suite.analysis.claims.definitions import COLLAPSE_LOSS_TOL, EMB_NORM
from suite.core.errors import ConfigError
from suite.results import schema
from suite.trial.optim import lr_sum


def _value_at(curve: compare.Trained, epoch: float) -> float:
    epochs, values = curve
    hit = values[epochs == epoch]
    return float(hit[0]) if hit.size else math.nan


def protocol_reason(arm: dict, base: dict) -> str:
    """Why an arm and its baseline ran different protocols ("" when they share one)."""
    differ = [
        f"{c} {compare._text(arm.get(c))} vs {compare._text(base.get(c))}"
        for c in compare.PROTOCOL_COLUMNS
        if c in arm and compare._text(arm.get(c)) != compare._text(base.get(c))
    ]
    return f"protocol differs ({', '.join(differ)}): compares protocols, not the intervention" if differ else ""


def manipulation_reason(ctx: Context, arm: dict, base: dict, kind: str) -> str:
    """Why the intervention did not change what it is meant to change ("" when it did, or cannot be told)."""
    norms = ctx.curve_values(EMB_NORM)
    arm_curve = norms.get(arm["_key"], compare.NO_CURVE)
    if kind == "cut":
        a, b = _value_at(arm_curve, 1.0), _value_at(norms.get(base["_key"], compare.NO_CURVE), 1.0)
        if math.isfinite(a) and math.isfinite(b) and not a < b:
            return f"manipulation failed: epoch-1 embedding norm {a:.4g} is not below the baseline's {b:.4g}"
        return ""
    p = compare.intervention_of(arm[schema.INTERVENTION]).gradscale
    values = arm_curve[1][np.isfinite(arm_curve[1]) & (arm_curve[1] > 0)]
    if p and values.size:
        boost = float(np.mean(values**p))
        if boost < 1.0:
            return (
                f"manipulation failed: training embedding norms {values.min():.3g}-{values.max():.3g}, so "
                f"gradscale:{p:g} multiplies gradients by {boost:.3g} on average: it damps, not boosts"
            )
    return ""


def collapse_loss(row: dict | pd.Series) -> float:
    """The loss of a collapsed network for a trial's method and hyper-parameters (NaN where the loss
    does not show a collapse, or the row does not say enough)."""
    try:
        cls = get_method(str(row.get(schema.METHOD)))
        args = row.get("method_args")
        hparams = cls.build_hparams(json.loads(args) if isinstance(args, str) else (args or {}))
        value = cls.collapse_loss(hparams, int(row.get("batch_size")))
    except (ConfigError, TypeError, ValueError):
        return math.nan
    return math.nan if value is None else float(value)


def collapsed(ctx: Context, trials: pd.DataFrame) -> dict[str, str]:
    """{trial key: why it collapsed} for the trials that ended below their own untrained network on the
    primary kNN, or at their method's collapsed-network loss (one collapse-loss computation per distinct
    method, hyper-parameters and batch size, not per trial)."""
    out: dict[str, str] = {}
    if ctx.k is not None:
        final, init = num(trials, schema.knn(ctx.k)), num(trials, schema.knn_init(ctx.k))
        below = final < init
        for key, f, i in zip(trials.loc[below, "_key"], final[below], init[below]):
            out[key] = f"collapsed: final kNN@{ctx.k} {f:.4f} below its untrained network's {i:.4f}"
    columns = [c for c in (schema.METHOD, "method_args", "batch_size") if c in trials.columns]
    if schema.METHOD not in columns or trials.empty:
        return out
    signature = compare.keys(trials, columns)
    firsts = trials.groupby(signature, sort=False).head(1)
    uniform = signature.map(dict(zip(signature.loc[firsts.index], (collapse_loss(r) for _, r in firsts.iterrows()))))
    loss = num(trials, schema.FINAL_LOSS)
    hit = (loss - uniform).abs() <= COLLAPSE_LOSS_TOL * uniform.abs()
    for key, value, u in zip(trials.loc[hit, "_key"], loss[hit], uniform[hit]):
        out.setdefault(key, f"collapsed: final loss {value:.4f} at its collapsed-network value {u:.4f}")
    return out


def every_collapse(ctx: Context) -> dict[str, str]:
    """`collapsed` over every trial of the context, computed once."""
    if "collapsed" not in ctx.cache:
        ctx.cache["collapsed"] = collapsed(ctx, ctx.trials)
    return ctx.cache["collapsed"]


def pair_checks(ctx: Context, arm: dict, base: dict, kind: str, column: str) -> str:
    """Why an (arm, baseline) pair cannot enter a speed comparison ("" when it can)."""
    if why := protocol_reason(arm, base):
        return why
    if why := manipulation_reason(ctx, arm, base, kind):
        return why
    broken = every_collapse(ctx)
    if arm["_key"] in broken:
        return broken[arm["_key"]]
    if base["_key"] in broken:
        return "baseline " + broken[base["_key"]]
    return ""


def lr_sums(ctx: Context) -> pd.Series:
    """Per trial, the learning rate summed over every step (`suite.trial.optim.lr_sum`): the trials'
    ``lr_sum`` column, else computed from the config and the training split's size (``train_images``, or
    the class_norms table's training counts, for runs that predate the column)."""
    trials = ctx.trials
    recorded = num(trials, schema.LR_SUM)
    sizes = num(trials, schema.TRAIN_IMAGES)
    if ctx.class_norms is not None and schema.TRAIN_COUNT in ctx.class_norms.columns:
        emb = ctx.class_norms[ctx.class_norms[schema.BIN_VECTOR] == "embedding"]
        counted = num(emb, schema.TRAIN_COUNT).groupby(emb["_key"]).sum()
        sizes = sizes.fillna(trials["_key"].map(counted))
    out = recorded.copy()
    missing = recorded.isna()
    columns = ["batch_size", schema.EPOCHS, "lr", "warmup_epochs", "lr_scaling"]
    config = trials.loc[missing, [c for c in columns if c in trials.columns]].assign(_size=sizes[missing])
    known: dict[tuple, float] = {}  # one schedule sum per distinct config, not per trial
    for i, row in config.iterrows():
        try:
            batch, epochs = int(row["batch_size"]), int(row[schema.EPOCHS])
            steps = int(row["_size"]) // batch
            lr = float(row["lr"]) * (batch / 256 if str(row.get("lr_scaling", "linear")) != "none" else 1.0)
            warmup = int(row.get("warmup_epochs") or 0) * steps
        except (KeyError, TypeError, ValueError):
            continue
        if (steps, epochs, warmup, lr) not in known:
            known[(steps, epochs, warmup, lr)] = lr_sum(steps * epochs, warmup, lr)
        out[i] = known[(steps, epochs, warmup, lr)]
    return out
