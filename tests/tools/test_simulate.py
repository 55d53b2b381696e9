"""`normbench simulate`: free-embedding norm dynamics checked against hand computations and theory.

Theory (Draganov et al.): for -cos(x, y) the gradient w.r.t. x is
-(y_hat - cos(theta) x_hat) / ||x||, orthogonal to x; one SGD step of size lr therefore
turns x towards y by atan(lr sin(theta) / ||x||^2) and leaves ||x'||^2 = ||x||^2 +
(lr sin(theta) / ||x||)^2. Steps to converge grow as r^2, as r^(2-p) under GradScale p.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from suite.cli import main
from suite.tools.simulate.dynamics import (
    NOT_CONVERGED,
    Variant,
    exponents,
    fit_exponent,
    make_pairs,
    norms_by_class_frequency,
    run_alignment,
    steps_vs_norm,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: as in `normbench simulate`, one thread avoids OpenMP contention on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(theta: float, rx: float, ry: float, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair in the plane of the first two axes, shape [1, 1, dim], float64."""
    x = torch.zeros(1, 1, dim, dtype=torch.float64)
    y = torch.zeros(1, 1, dim, dtype=torch.float64)
    x[0, 0, 0] = rx
    y[0, 0, 0], y[0, 0, 1] = ry * math.cos(theta), ry * math.sin(theta)
    return x, y


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    return math.acos(float((a @ b) / (a.norm() * b.norm())))


@pytest.mark.parametrize(
    "theta, rx, ry, lr, wd, p",
    [
        (1.2, 1.0, 1.0, 0.3, 0.0, None),
        (2.5, 0.7, 2.0, 0.5, 0.0, None),  # unequal norms: the smaller point turns more
        (0.9, 3.0, 1.5, 2.0, 0.0, 1.0),  # GradScale p = 1: step times ||z||
        (1.7, 2.0, 0.5, 0.4, 0.1, None),  # weight decay shrinks the radial part by (1 - lr wd)
    ],
)
def test_one_sgd_step_matches_the_hand_computed_angle_and_norms(theta, rx, ry, lr, wd, p):
    x, y = _pair(theta, rx, ry)
    run = run_alignment(x, y, lr=lr, max_steps=1, threshold=2.0, weight_decay=wd, gradscale=p)
    assert run.steps.tolist() == [NOT_CONVERGED]  # a cosine never exceeds 2

    def turned(r: float) -> tuple[float, float]:
        tangential = lr * math.sin(theta) * r ** (p or 0) / r  # |grad| = sin / r, times r^p
        radial = r * (1 - lr * wd)
        return math.atan2(tangential, radial), math.hypot(tangential, radial)

    phi_x, norm_x = turned(rx)
    phi_y, norm_y = turned(ry)
    assert _angle(run.x, x) == pytest.approx(phi_x, rel=1e-9)
    assert _angle(run.y, y) == pytest.approx(phi_y, rel=1e-9)
    assert _angle(run.x, run.y) == pytest.approx(abs(theta - phi_x - phi_y), rel=1e-9)
    assert float(run.x.norm()) == pytest.approx(norm_x, rel=1e-12)
    assert float(run.y.norm()) == pytest.approx(norm_y, rel=1e-12)


def test_lr_applies_to_the_mean_over_pairs():
    """With n pairs each point moves lr / n per unit gradient (the paper's lr = 10 at n = 500)."""
    theta, r, lr, n = 1.0, 1.5, 0.9, 3
    x, y = _pair(theta, r, r)
    run = run_alignment(x.repeat(1, n, 1), y.repeat(1, n, 1), lr=lr, max_steps=1, threshold=2.0)
    for i in range(n):
        assert _angle(run.x[0, i], x) == pytest.approx(math.atan(lr / n * math.sin(theta) / r**2), rel=1e-9)


def _step_norms(
    weight_decay: float, gradscale: float | None, steps: int = 40
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = make_pairs(30, 8, 0.5, [0, 1], dtype=torch.float64)
    out = []
    for _ in range(steps):  # plain SGD keeps no state: one step per call is the same trajectory
        run = run_alignment(x, y, lr=1.0, max_steps=1, threshold=2.0, weight_decay=weight_decay, gradscale=gradscale)
        out.append((torch.cat([x, y], 1).norm(dim=-1), torch.cat([run.x, run.y], 1).norm(dim=-1)))
        x, y = run.x, run.y
    return out


@pytest.mark.parametrize("gradscale", [None, 1.0, 2.0])
def test_norms_never_decrease_without_weight_decay(gradscale):
    records = _step_norms(0.0, gradscale)
    for before, after in records:
        assert torch.all(after >= before * (1 - 1e-12))
    assert torch.all(records[-1][1] > records[0][0])  # and they do grow


def test_weight_decay_makes_norms_shrink():
    """Control: the same check sees shrinking norms once weight decay acts."""
    before, after = _step_norms(0.05, None)[-1]
    assert torch.any(after < before)


def test_fit_exponent_recovers_a_known_power_law():
    radii = [0.5, 1, 2, 4, 8]
    assert fit_exponent(radii, [3.0 * r**1.7 for r in radii]) == pytest.approx(1.7, abs=1e-12)
    assert math.isnan(fit_exponent([1, 1], [2, 3]))  # one radius: no slope


def test_exponent_is_two_for_plain_sgd_and_drops_by_p_under_gradscale():
    # n = 50 with lr = 1 on the mean: the same per-pair step (lr / n = 0.02) as the paper's lr 10 at n = 500.
    variants = [Variant("plain"), Variant("gs1", gradscale=1.0), Variant("gs2", gradscale=2.0)]
    frame = steps_vs_norm([0.5, 1, 2, 3], [0, 1], variants=variants, n=50, dim=20, lr=1.0, max_steps=5000)
    assert frame["converged"].all()
    a = dict(zip(*exponents(frame)[["variant", "exponent"]].T.values))
    assert 1.8 <= a["plain"] <= 2.2
    assert 0.8 <= a["gs1"] <= 1.2
    assert abs(a["gs2"]) < 0.3
    plain = frame[frame["variant"] == "plain"]
    assert (plain["final_mean_norm"] >= plain["radius"]).all()


def test_runs_that_hit_the_cap_are_marked_and_left_out_of_the_fit():
    frame = steps_vs_norm([0.25, 0.5, 8], [0], variants=[Variant("plain")], n=20, lr=0.4, max_steps=100)
    by_r = frame.set_index("radius")
    assert by_r.loc[8.0, "steps"] == NOT_CONVERGED and not by_r.loc[8.0, "converged"]
    assert by_r.loc[0.25, "converged"] and by_r.loc[0.5, "converged"]
    row = exponents(frame).iloc[0]
    assert row["not_converged"] == 1 and row["radius_max"] == 0.5


def test_rarer_classes_end_with_smaller_norms():
    frame = norms_by_class_frequency((1, 2, 4, 8), seeds=[0, 1], points_per_class=16, dim=16, batch_size=16, steps=300)
    means = frame.groupby("frequency")["mean_norm"].mean().sort_index()
    draws = frame.groupby("frequency")["draws_per_sample"].mean().sort_index()
    assert means.is_monotonic_increasing and means.iloc[0] < means.iloc[-1]
    assert draws.is_monotonic_increasing  # the mechanism: frequent samples get more updates
    assert (frame["mean_norm"] > 1.0).all()  # started at norm 1; without weight decay norms only grow


def test_cli_writes_tables_and_figures(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--seeds", "1", "--max-steps", "60", "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in (
        "steps_vs_norm.csv",
        "exponents.csv",
        "norms_by_class.csv",
        "norms_by_class_seeds.csv",
        "steps_vs_norm.png",
        "norms_by_class.png",
    ):
        assert (out / name).stat().st_size > 0, name
    steps = pd.read_csv(out / "steps_vs_norm.csv")
    assert len(steps) == 4 * 13  # 4 variants x 13 radii x 1 seed
    assert not steps[steps["radius"] == 10]["converged"].any()  # r = 10 needs ~10^4 steps, capped at 60
    assert "not conv." in printed and "fitted exponent" in printed
    assert (out / "steps_vs_norm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, field, value",
    [
        (["--seeds", "0"], "--seeds", "0"),
        (["--seeds", "-2"], "--seeds", "-2"),
        (["--max-steps", "0"], "--max-steps", "0"),
    ],
)
def test_cli_bad_input_exits_2_naming_flag_value_and_allowed(tmp_path, capsys, argv, field, value):
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert field in err and value in err and ">= 1" in err
    assert not out.exists()


def test_cli_refuses_an_out_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["simulate", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err and target.read_text() == "x"


def test_cli_non_integer_seeds_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--seeds", "three"])
    assert info.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_cli_help_explains_the_experiments(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for text in ("--seeds", "--out", "lr=10 on the MEAN loss", "1:2:4:8", "steps_vs_norm.csv", "exit status"):
        assert text in out, text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "simulate" in capsys.readouterr().out
