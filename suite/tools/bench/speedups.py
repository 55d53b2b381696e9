"""Fast-path candidates, each measured against the default it would replace.

* ``torch.compile`` of backbone and heads (``fastpath.maybe_compile``): plain-loop
  images/s compiled vs eager, and what the first epoch pays for compilation.
  Full run only: compiling takes from tens of seconds to minutes on a CPU.
* Optimizer step implementations: ``build_optimizer``'s default (``foreach=None``:
  a per-parameter for-loop on CPU, foreach on CUDA) vs ``foreach=True`` vs ``fused=True``.
* Host synchronizations inside one training step (CUDA only), counted with
  ``torch.cuda.set_sync_debug_mode("warn")``.
"""

from __future__ import annotations

import warnings

import torch

from suite.tools.bench.loop import build_setup, run_epoch, train_step
from suite.tools.bench.report import Figure, Report, speedup
from suite.tools.bench.timing import best_seconds, log
from suite.tools.bench.training import warm
from suite.trial.fastpath import compile_unavailable_reason

OPTIMIZER_STEPS = 20  # per timed call


def with_step_implementation(optimizer: torch.optim.Optimizer, **flags: bool) -> torch.optim.Optimizer:
    """The same optimizer (class, groups, hyper-parameters) with ``foreach``/``fused`` set."""
    groups = [{k: v for k, v in g.items() if k not in ("foreach", "fused")} for g in optimizer.param_groups]
    return type(optimizer)(groups, **flags)


def measure_optimizer_steps(report: Report, settings, splits) -> None:
    name = settings.methods[0]
    cfg = settings.trial_config(name)
    setup = build_setup(cfg, splits)
    if not isinstance(setup.optimizer, (torch.optim.SGD, torch.optim.AdamW)):
        report.skip("fastpath", "optimizer", f"{type(setup.optimizer).__name__} has no foreach/fused variants")
        return
    log(f"fastpath: optimizer step implementations ({type(setup.optimizer).__name__}, {name})")
    run_epoch(setup, 1, max_steps=1)  # real gradients on every parameter
    params = sum(p.numel() for g in setup.optimizer.param_groups for p in g["params"])

    def step_ms(opt: torch.optim.Optimizer) -> float:
        def steps() -> None:
            for _ in range(OPTIMIZER_STEPS):
                opt.step()

        return 1e3 * best_seconds(steps, settings.repeats, setup.device) / OPTIMIZER_STEPS

    default_ms = step_ms(setup.optimizer)
    group = f"{type(setup.optimizer).__name__}, {name}, {params / 1e6:.2f}M parameters"
    for flag in ("foreach", "fused"):
        try:
            variant = with_step_implementation(setup.optimizer, **{flag: True})
        except (RuntimeError, ValueError) as err:  # e.g. fused unsupported on this device/dtype
            report.skip("fastpath", f"optimizer {flag}", str(err).splitlines()[0])
            continue
        report.add(
            "fastpath",
            group,
            speedup(
                f"{flag}_step_ms",
                f"optimizer.step, {flag}=True",
                step_ms(variant),
                "ms",
                "default_step_ms",
                "default (foreach=None)",
                default_ms,
                f"{flag}_speedup",
                higher_is_better=False,
            ),
        )


def measure_compile(report: Report, settings, splits) -> None:
    if settings.quick:
        report.skip("fastpath", "compile", "--quick (compiling takes minutes on a CPU)")
        return
    reason = compile_unavailable_reason(settings.device)
    if reason is not None:
        report.skip("fastpath", "compile", reason)
        return
    name = settings.methods[0]
    cfg = settings.trial_config(name)
    results = {}
    for compiled in (False, True):
        log(f"fastpath: {name} plain loop, {'compiled' if compiled else 'eager'}")
        setup = build_setup(cfg, splits, compile_model=compiled)
        results[compiled] = [run_epoch(setup, epoch) for epoch in range(1, cfg.epochs + 1)]
        del setup
    eager, comp = results[False], results[True]
    group = f"torch.compile, {name}"
    report.add(
        "fastpath",
        group,
        speedup(
            "compiled_images_per_s",
            "compiled backbone + heads (best warm epoch)",
            max(e.images_per_s for e in warm(comp)),
            "images/s",
            "eager_images_per_s",
            "eager",
            max(e.images_per_s for e in warm(eager)),
            "compile_speedup",
        ),
    )
    report.add(
        "fastpath",
        group,
        speedup(
            "compiled_first_epoch_s",
            "first epoch, compilation included",
            comp[0].seconds,
            "s",
            "eager_first_epoch_s",
            "eager first epoch",
            eager[0].seconds,
            "first_epoch_ratio",
            higher_is_better=False,
        ),
    )


def measure_host_syncs(report: Report, settings, splits) -> None:
    """Implicit device->host synchronizations in one training step (each one stalls the GPU queue)."""
    if settings.device != "cuda":
        report.skip("fastpath", "host syncs", "CUDA only (torch.cuda.set_sync_debug_mode)")
        return
    cfg = settings.trial_config(settings.methods[0])
    setup = build_setup(cfg, splits)
    run_epoch(setup, 1, max_steps=1)
    batch_idx = torch.arange(cfg.batch_size, device=setup.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(setup, batch_idx, 0.5)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
    for message in sorted(set(syncs)):
        log(f"fastpath: host sync in the step: {message}")
    report.add(
        "fastpath",
        "host syncs",
        Figure(
            "host_syncs_per_step",
            "implicit host syncs in one training step",
            float(len(syncs)),
            "syncs",
            "target_host_syncs",
            "target",
            0.0,
        ),
    )
