"""`normbench bench`: every figure present and finite, a fair plain-loop reference, compile parity.

No timing assertions: figures are printed, never asserted (DESIGN.md).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from methods import METHODS
from suite.cli import main
from suite.config import make_config
from suite.data.synthetic import SYNTH_SIZES
from suite.results import store
from suite.tools.bench.analysis_scale import reference_tables, synthetic_tables
from suite.tools.bench.loop import build_setup, parameter_count, run_epoch
from suite.tools.bench.report import SECTIONS, Figure, Report, non_finite_figures
from suite.tools.bench.settings import BenchSettings, training_sizes
from suite.tools.bench.sweep_scale import SyntheticReports, drive_sweep
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
    "plain_loop_ratio_min",
    "plain_loop_ratio_max",
    "row_images_per_s",
    "plain_loop_all_epochs_images_per_s",
    "plain_loop_ratio_all_epochs",
    "plain_loop_ratio_all_epochs_min",
    "plain_loop_ratio_all_epochs_max",
    "warm_steps",
)
SWEEP_SCALE_KEYS = ("per_report_ms", "reports_s", "open_s", "close_s", "total_s")
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


# Two methods, one without and one with a momentum teacher: the sections run the same code for every
# method, and test_plain_loop_trains_the_trainers_model covers each registered one.
QUICK_METHODS = ["dino", "simclr"]  # sorted, as the JSON lists them


@pytest.mark.slow
def test_bench_quick_emits_every_figure_finite(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--methods", ",".join(QUICK_METHODS), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    data = json.loads(out.read_text())

    assert data["machine"]["cpu_model"] and data["machine"]["device"] == "cpu"
    assert data["machine"]["cpu_model"] in table and "torch " + torch.__version__ in table
    assert sorted(data["training"]) == QUICK_METHODS
    for method in QUICK_METHODS:
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
    for method in QUICK_METHODS:  # each ratio is the median of the rounds, inside their range
        t = data["training"][method]
        for ratio in ("plain_loop_ratio", "plain_loop_ratio_all_epochs"):
            assert t[f"{ratio}_min"] <= t[ratio] <= t[f"{ratio}_max"], (method, ratio)
        assert t["warm_steps"] == data["settings"]["train_limit"] // data["settings"]["batch_size"], method
    assert_scale_sections(data, data["settings"])
    # data_scale, from /proc in fresh processes (a trial, and two data-parallel ranks) on cached splits of 10k
    # and 100k images: a private copy of the training split would add ~0.7 of the decoded growth
    growth = data["data_scale"]["growth"]
    assert growth["private_growth_100000_vs_10000"] < 0.2, data["data_scale"]
    assert growth["rank_private_growth_100000_vs_10000"] < 0.2, data["data_scale"]
    # Skipped parts are said to be skipped, and why; they are not figures.
    assert "--quick" in data["skipped"]["ray.sweep overhead"] and "--quick" in data["skipped"]["fastpath.compile"]
    assert "ray" not in data and "skipped" in table
    assert non_finite_figures(data) == []


def assert_scale_sections(data: dict, settings: dict) -> None:
    """sweep_scale and analysis_scale: every size measured, every figure finite, the growth ratios
    named after the sizes they compare."""
    sizes, epochs = settings["sweep_scale_trials"], settings["sweep_scale_epochs"]
    sweep = data["sweep_scale"]
    for n in sizes:
        for key in SWEEP_SCALE_KEYS:
            assert _finite(sweep[f"{n} trials x {epochs} epochs"][key]), (n, key)
    assert _finite(sweep["growth"][f"per_report_ratio_{sizes[-1]}_vs_{sizes[0]}"])
    small, large = settings["analysis_scale_trials"][0], settings["analysis_scale_trials"][-1]
    for command in ("claims", "leaderboard"):
        figures = data["analysis_scale"][command]
        assert _finite(figures[f"seconds_{small}"]) and _finite(figures[f"seconds_{large}"]), command
        assert _finite(figures[f"growth_ratio_{large}_vs_{small}"]), command


def test_sections_measure_only_the_named_sections(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "-q", "--sections", "analysis_scale", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [k for k in data if k in SECTIONS] == ["analysis_scale"]
    assert data["settings"]["sections"] == ["analysis_scale"] and data["skipped"] == {}
    assert non_finite_figures(data) == []


def test_sections_in_any_order_run_in_the_tables_order(tmp_path):
    """Named out of order, sections run and print in the tables' order (two of the quick ones; what each
    section measures is checked by the quick run of them all)."""
    out = tmp_path / "bench.json"
    flags = ["--sections", "evaluation,views", "--methods", "simclr", "--json", str(out)]
    assert main(["bench", "--quick", "-q", *flags]) == 0
    data = json.loads(out.read_text())
    assert [k for k in data if k in SECTIONS] == ["views", "evaluation"]
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
        (["--sections", "views,sweepscale"], "--sections", "sweepscale", "sweep_scale"),
        (["--dataset", "digits-synthh"], "--dataset", "digits-synthh", "digits-synth"),
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
        return float(setup.model(views).loss.detach()), setup.model

    eager, eager_model = first_loss(False)
    compiled, compiled_model = first_loss(True)
    assert is_compiled(compiled_model.backbone) and not is_compiled(eager_model.backbone)
    assert list(compiled_model.state_dict()) == list(eager_model.state_dict())  # checkpoints stay compatible
    assert compiled == pytest.approx(eager, rel=COMPILE_RTOL)


def test_the_gpu_run_trains_on_digits_synth_long_enough_to_time_a_warm_epoch():
    cuda = training_sizes("cuda", quick=False)
    steps = SYNTH_SIZES["train"] // BenchSettings.batch_size
    assert cuda["dataset"] == "digits-synth" and cuda["train_limit"] is None and steps >= 100
    assert cuda["epochs"] >= 2  # figures read the epochs after the first
    assert training_sizes("cuda", quick=False, dataset="digits")["dataset"] == "digits"  # --dataset wins
    assert training_sizes("cpu", quick=False)["dataset"] == "digits"


def test_the_sweep_scale_driver_leaves_the_tables_a_sweep_would(tmp_path):
    """The synthetic stream is a valid one: finished trials, a retried one, a failed one, all in the
    consolidated tables after close, with the reference run's columns."""
    reports = SyntheticReports(epochs=3)
    figures = drive_sweep(tmp_path, trials=6, window=3, reports=reports)
    assert figures["reports"] == 3 + 3 * 4 + 2 + 2 * 2 + 1  # starts, epochs 0-3, the retry, finals, an error
    tables = store.read_tables(tmp_path)
    trials = tables["trials"].set_index("trial_id")
    assert list(trials.index) == [f"t{i:05d}" for i in range(6)]
    assert (trials["status"] == "completed").sum() == 5 and trials.loc["t00004", "status"] == "failed"
    assert "non-finite loss" in trials.loc["t00004", "error"]
    curves = tables["curves"]
    assert len(curves[curves["trial_id"] == "t00003"]) == 4  # the retried trial's re-reported epoch counted once
    assert set(tables["norm_bins"]["trial_id"]) == set(trials.index) - {"t00004"}
    assert not any((tmp_path / store.PARTS_DIR).rglob("*.parquet"))  # closed: the tables hold every trial
    assert all(math.isfinite(v) and v >= 0 for v in figures.values())


def test_synthetic_results_have_the_reference_runs_columns_new_ids_and_seeds():
    reference = reference_tables()
    tables = synthetic_tables(250, reference)
    for name, frame in tables.items():
        assert list(frame.columns) == list(reference[name].columns), name
    trials = tables["trials"]
    assert len(trials) == 250 and trials["trial_id"].is_unique
    assert not set(trials["trial_id"]) & set(reference["trials"]["trial_id"])
    assert set(tables["curves"]["trial_id"]) == set(trials["trial_id"])
    per_trial = len(reference["curves"]) / len(reference["trials"])
    assert len(tables["curves"]) == pytest.approx(250 * per_trial, rel=0.1)
    first = trials.iloc[: len(reference["trials"])]  # replica 0: the reference's seeds and settings, new values
    assert (first["seed"].to_numpy() == reference["trials"]["seed"].to_numpy()).all()
    later = trials.iloc[len(reference["trials"]) :]
    assert later["seed"].min() >= 1000
    assert not np.allclose(first["knn_top1_k200"].to_numpy(), reference["trials"]["knn_top1_k200"].to_numpy())
    assert trials["knn_top1_k200"].between(0, 1).all()


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "simsiam", "dino"])
def test_the_plain_loop_and_the_trainer_build_the_same_parts(tmp_path, method):
    """Parameter by parameter and group by group: the bench's reference loop trains what the trainer trains."""
    from suite.config import resolve_config
    from suite.tools.bench.loop import build_setup
    from suite.trial.train import _setup, load_data

    heads = {"byol": {"proj_hidden_dim": 64, "pred_hidden_dim": 64}, "simsiam": {"proj_hidden_dim": 64},
             "moco": {"proj_hidden_dim": 64}, "dino": {"head_hidden_dim": 64, "num_prototypes": 64}}  # fmt: skip
    resolved = resolve_config({**TINY, "method": method, "method_args": heads.get(method, {})})
    cfg = resolved.config
    splits = load_data(resolved)
    trial = _setup(resolved, tmp_path / "t", None, torch.device("cpu"), 1)
    plain = build_setup(cfg, splits)
    a, b = trial.method.state_dict(), plain.model.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert len(trial.optimizer.param_groups) == len(plain.optimizer.param_groups)
    for ga, gb in zip(trial.optimizer.param_groups, plain.optimizer.param_groups):
        assert {k: v for k, v in ga.items() if k != "params"} == {k: v for k, v in gb.items() if k != "params"}
        assert [p.shape for p in ga["params"]] == [p.shape for p in gb["params"]]
    assert [aug.spec for aug in trial.augmenters] == [aug.spec for aug in plain.augmenters]
