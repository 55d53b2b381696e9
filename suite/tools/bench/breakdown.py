"""Where an epoch's time goes: views, forward, backward, optimizer, norm logging, evaluation, checkpoint.

The epoch runs in ``suite.tools.bench.loop`` with a timer that synchronizes the device
around every part (so GPU time lands in the part that queued it), after one
warm-up epoch. Each training part and the checkpoint are shown as a share of
that timed epoch; the timed epoch and the evaluation stand next to the trainer's
own figures for the same config from ``measure_training``: its best warm epoch
(``epoch_time_s``) and its final evaluation (``eval_time_s``, which adds norm
diagnostics to the kNN and probe timed here).
"""

from __future__ import annotations

from pathlib import Path

import torch

from suite.measure.knn import knn_evaluate
from suite.measure.linear_probe import linear_probe
from suite.tools.bench.evaluation import encode_features
from suite.tools.bench.loop import build_setup, run_epoch
from suite.tools.bench.report import Figure, Report
from suite.tools.bench.timing import PartTimer, log
from suite.tools.bench.training import TrialRecord, warm
from suite.trial.checkpoint import TrainState, save

TRAIN_PARTS = ("views", "forward", "backward", "optimizer", "norm logging")


def evaluate_once(setup, splits) -> None:
    """The evaluation protocol once: encode train and test, kNN at every k, linear probe."""
    cfg = setup.cfg
    kw = dict(
        batch_size=cfg.eval_batch_size, device=setup.device, precision=cfg.precision, channels_last=setup.channels_last
    )
    train = encode_features(setup.model, splits.train_images, splits.mean, splits.std, **kw)
    test = encode_features(setup.model, splits.test_images, splits.mean, splits.std, **kw)
    knn_evaluate(
        train,
        splits.train_labels.to(setup.device),
        test,
        splits.test_labels.to(setup.device),
        ks=tuple(cfg.knn_k),
        temperature=cfg.knn_temperature,
        num_classes=splits.num_classes,
    )
    linear_probe(
        train,
        splits.train_labels,
        test,
        splits.test_labels,
        num_classes=splits.num_classes,
        epochs=cfg.linear_epochs,
        seed=cfg.seed,
        device=setup.device,
    )


def measure_breakdown(report: Report, settings, splits, trial: TrialRecord, workdir: Path) -> None:
    name = settings.methods[0]
    cfg = settings.trial_config(name)
    log(f"breakdown: {name}, one warm-up epoch, then one timed part by part")
    setup = build_setup(cfg, splits)
    run_epoch(setup, 1)
    timer = PartTimer(setup.device)
    epoch = run_epoch(setup, 2, timer, log_norms=True)
    with timer.part("evaluation"):
        evaluate_once(setup, splits)
    with timer.part("checkpoint"):
        save(Path(workdir) / "breakdown-checkpoint", setup.model, setup.optimizer, cfg, TrainState(epoch=2))

    row, curves = trial
    trainer_epoch = min(float(c["epoch_time_s"]) for c in warm(curves))
    trainer_eval = float(row["eval_time_s"])
    group = f"{name} (epoch of {epoch.images} images)"
    share = "{:.0%}"
    # Parts are shares of the timed epoch they belong to (measured together, so a machine that
    # slows down between runs does not distort them); the timed epoch itself, evaluation and
    # checkpoint stand next to the trainer's own figures.
    for part in TRAIN_PARTS:
        key = part.replace(" ", "_")
        report.add(
            "breakdown",
            group,
            Figure(
                f"{key}_s",
                part,
                timer.seconds[part],
                "s",
                "timed_epoch_s",
                "timed epoch (sum of parts)",
                epoch.seconds,
                f"{key}_share",
                timer.seconds[part] / epoch.seconds,
                share,
            ),
        )
    report.add(
        "breakdown",
        group,
        Figure(
            "timed_epoch_s",
            "timed epoch, synchronized per part",
            epoch.seconds,
            "s",
            "trainer_epoch_s",
            "trainer epoch (best warm)",
            trainer_epoch,
            "timed_vs_trainer",
            epoch.seconds / trainer_epoch,
            share,
        ),
    )
    report.add(
        "breakdown",
        group,
        Figure(
            "evaluation_s",
            "evaluation (encode, kNN, probe)",
            timer.seconds["evaluation"],
            "s",
            "trainer_eval_s",
            "trainer final evaluation",
            trainer_eval,
            "evaluation_vs_trainer",
            timer.seconds["evaluation"] / trainer_eval,
            share,
        ),
    )
    report.add(
        "breakdown",
        group,
        Figure(
            "checkpoint_s",
            "checkpoint (model + optimizer)",
            timer.seconds["checkpoint"],
            "s",
            "timed_epoch_s",
            "timed epoch (sum of parts)",
            epoch.seconds,
            "checkpoint_share",
            timer.seconds["checkpoint"] / epoch.seconds,
            share,
        ),
    )
    del setup
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
