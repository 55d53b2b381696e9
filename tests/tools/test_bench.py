"""`normbench bench`: every figure present and finite, a fair plain-loop reference, compile parity.

No timing assertions: figures are printed, never asserted (DESIGN.md).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from methods import METHODS
from suite.cli import main
from suite.config import make_config
from suite.tools.bench.loop import build_setup, parameter_count, run_epoch
from suite.tools.bench.report import Figure, Report, non_finite_figures
from suite.tools.bench.training import run_suite_trial
from suite.trial.checkpoint import STATE_FILE
from suite.trial.fastpath import compile_unavailable_reason, is_compiled
from suite.trial.train import load_data

TINY = dict(
    backbone="test_resnet", image_size=16, batch_size=32, train_limit=32, epochs=1, linear_epochs=1, device="cpu"
)

VIEW_KEYS = (
    "batched_images_per_s",
    "tv2_loop_images_per_s",
    "batched_vs_tv2_ratio",
    "pil_dataloader_images_per_s",
    "batched_vs_pil_ratio",
)
CROP_KEYS = (
    "resample_images_per_s",
    "slice_images_per_s",
    "grid_sample_images_per_s",
    "roi_align_images_per_s",
    "resample_vs_slice_ratio",
    "resample_vs_grid_sample_ratio",
    "resample_vs_roi_align_ratio",
)
TRAINING_KEYS = (
    "images_per_s",
    "plain_loop_images_per_s",
    "plain_loop_ratio",
    "row_images_per_s",
    "plain_loop_all_epochs_images_per_s",
    "plain_loop_ratio_all_epochs",
)
BREAKDOWN_KEYS = (
    "views_s",
    "forward_s",
    "backward_s",
    "optimizer_s",
    "norm_logging_s",
    "timed_epoch_s",
    "evaluation_s",
    "checkpoint_s",
    "trainer_epoch_s",
    "trainer_eval_s",
)
EVALUATION_KEYS = {
    "encode": ("images_per_s", "fp32_images_per_s", "vs_fp32_ratio"),
    "knn": (
        "chunked_queries_per_s",
        "full_queries_per_s",
        "chunked_vs_full_ratio",
        "chunked_largest_tensor_mib",
        "full_largest_tensor_mib",
        "chunked_peak_mib",
        "full_peak_mib",
        "prediction_agreement",
    ),
    "linear_probe": ("seconds", "sklearn_seconds", "vs_sklearn_ratio", "top1", "sklearn_top1"),
}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_bench_quick_emits_every_figure_finite(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    data = json.loads(out.read_text())

    assert data["machine"]["cpu_model"] and data["machine"]["device"] == "cpu"
    assert data["machine"]["cpu_model"] in table and "torch " + torch.__version__ in table
    for method in METHODS:
        for key in VIEW_KEYS:
            assert _finite(data["views"][method][key]), (method, key)
        for key in TRAINING_KEYS:
            assert _finite(data["training"][method][key]), (method, key)
    for key in CROP_KEYS:
        assert _finite(data["views"]["crop"][key]), key
    (breakdown,) = data["breakdown"].values()
    for key in BREAKDOWN_KEYS:
        assert _finite(breakdown[key]), key
    for group, keys in EVALUATION_KEYS.items():
        for key in keys:
            assert _finite(data["evaluation"][group][key]), (group, key)
    (optimizer,) = data["fastpath"].values()
    assert _finite(optimizer["foreach_step_ms"]) and _finite(optimizer["default_step_ms"])
    assert data["evaluation"]["knn"]["prediction_agreement"] == 1.0  # chunked and full kNN did the same job
    # Skipped parts are said to be skipped, and why; they are not figures.
    assert "--quick" in data["skipped"]["ray.sweep overhead"] and "--quick" in data["skipped"]["fastpath.compile"]
    assert "ray" not in data and "skipped" in table
    assert non_finite_figures(data) == []


def test_figure_check_flags_non_finite_figures():
    report = Report(machine={}, settings={})
    report.add(
        "training",
        "simclr",
        Figure(
            "images_per_s",
            "x",
            math.nan,
            "images/s",
            "plain_loop_images_per_s",
            "y",
            10.0,
            "plain_loop_ratio",
            math.nan,
        ),
    )
    assert non_finite_figures(report.to_json()) == [
        "training.simclr.images_per_s=nan",
        "training.simclr.plain_loop_ratio=nan",
    ]


@pytest.mark.parametrize(
    "flags, field, value, allowed",
    [
        (["--image-size", "0"], "--image-size", "0", "8 to 1024"),
        (["--methods", "simclrr"], "--methods", "simclrr", "simclr"),
        (["--backbone", "resnet1800"], "--backbone", "resnet1800", "resnet18"),
        (["--threads", "0"], "--threads", "0", ">= 1"),
    ],
)
def test_bad_flags_exit_2_naming_flag_value_and_allowed(capsys, flags, field, value, allowed):
    assert main(["bench", "--quick", *flags]) == 2
    err = capsys.readouterr().err
    assert field in err and value in err and allowed in err, err


@pytest.mark.parametrize("method", sorted(METHODS))
def test_plain_loop_trains_the_trainers_model(tmp_path, method):
    """Same model (every parameter and buffer, by name and shape) and the same first-batch loss
    for the same seed: the plain loop is a fair reference for run_trial's images/s."""
    cfg = make_config({**TINY, "method": method, "seed": 3})
    setup = build_setup(cfg, load_data(cfg))
    plain_loss = float(run_epoch(setup, 1, max_steps=1).losses[0])

    trial_dir = tmp_path / "trial"
    _, curves = run_suite_trial(cfg, trial_dir)
    trained = torch.load(trial_dir / "checkpoints" / "last" / STATE_FILE, map_location="cpu", weights_only=False)[
        "model"
    ]
    assert {k: tuple(v.shape) for k, v in trained.items()} == {
        k: tuple(v.shape) for k, v in setup.model.state_dict().items()
    }
    assert sum(trained[name].numel() for name, _ in setup.model.named_parameters()) == parameter_count(setup.model)
    assert curves[0]["loss"] == pytest.approx(
        plain_loss, rel=1e-6
    )  # one step per epoch: the epoch loss is the first batch's


COMPILE_RTOL = 1e-4  # inductor may reorder float32 reductions; the loss is O(1)


@pytest.mark.slow
def test_compiled_model_gives_the_eager_first_step_loss():
    reason = compile_unavailable_reason("cpu")
    if reason is not None:
        pytest.skip(f"torch.compile cannot run here: {reason}")
    cfg = make_config({**TINY, "method": "simclr"})
    splits = load_data(cfg)

    def first_loss(compile_model: bool) -> tuple[float, torch.nn.Module]:
        setup = build_setup(cfg, splits, compile_model=compile_model)
        torch.manual_seed(0)
        views = [aug(setup.images[: cfg.batch_size]) for aug in setup.augmenters]
        return float(setup.model(views)["loss"].detach()), setup.model

    eager, eager_model = first_loss(False)
    compiled, compiled_model = first_loss(True)
    assert is_compiled(compiled_model.backbone) and not is_compiled(eager_model.backbone)
    assert list(compiled_model.state_dict()) == list(eager_model.state_dict())  # checkpoints stay compatible
    assert compiled == pytest.approx(eager, rel=COMPILE_RTOL)
