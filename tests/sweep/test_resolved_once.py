"""A sweep trial's config is resolved once, on the driver, and crosses to Ray as that resolved value.

A real local Ray sweep runs with a `worker_process_setup_hook` that makes every Ray worker process that
loads our code record what resolving a config does -- `suite.config.load.resolve`, `TrialConfig.model_validate`, a
method's `build_hparams` (method_args validated), `parse_spec` (a dataset name parsed) -- and
`run_trial`, which shows that the hook watched the processes that trained. The driver (this process)
records the same. The notes resolving produced reach the trial's row through the resolved value.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from support import local_ray

from suite.config import TrialConfig
from suite.sweep.grid import expand_grid
from suite.sweep.runner import run_sweep
from suite.sweep.spec import spec_from_dict

pytestmark = pytest.mark.ray

BASE = dict(
    dataset="digits",
    backbone="test_resnet",
    image_size=16,
    epochs=1,
    batch_size=64,
    train_limit=128,
    eval_batch_size=512,
    device="cpu",
    num_threads=1,
)
SMALL_DINO = {"head_hidden_dim": 64, "bottleneck_dim": 32, "num_prototypes": 64}


def _spy_hook(log: str):
    """``install(setattr_)``: wrap what resolving a config calls, and `run_trial`, so each call appends
    "PID NAME" to ``log``. Defined in here so that Ray pickles it by value for its worker processes, where
    it runs at their start with the builtin setattr; the driver passes pytest's, which undoes it.

    In a worker the spies go in the moment the process first imports one of our packages (`suite` or
    `methods`: unpickling anything of ours does, before any of it runs), not at its start: most of Ray's
    processes (its idle workers, Ray Train's helper actors) never touch our code and are spared the import
    of the trainer."""

    def spy_on_everything(setattr_) -> None:
        import os
        import sys

        import methods.base
        import suite.config
        import suite.config.load
        import suite.data.plan
        import suite.data.specs
        import suite.trial.train
        from suite.config.model import TrialConfig

        def record(name: str) -> None:
            with open(log, "a") as out:
                out.write(f"{os.getpid()} {name}\n")

        def function_spy(name, original):
            def spy(*args, **kwargs):
                record(name)
                return original(*args, **kwargs)

            return spy

        def classmethod_spy(name, original):
            def spy(cls, *args, **kwargs):
                record(name)
                return original.__func__(cls, *args, **kwargs)

            return classmethod(spy)

        for name, original in (
            ("resolve", suite.config.load.resolve),
            ("parse_spec", suite.data.specs.parse_spec),
            ("run_trial", suite.trial.train.run_trial),
        ):
            spy = function_spy(name, original)
            for module in list(sys.modules.values()):  # every module that imported it by name
                if getattr(module, "__name__", "").startswith(("suite", "methods")):
                    for attr, value in list(vars(module).items()):
                        if value is original:
                            setattr_(module, attr, spy)
        for cls, name in ((TrialConfig, "model_validate"), (methods.base.SSLMethod, "build_hparams")):
            original = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)  # the classmethod itself
            setattr_(cls, name, classmethod_spy(name, original))

    def install(setattr_=setattr) -> None:
        import importlib.abc
        import importlib.util
        import sys

        if setattr_ is not setattr or {"suite", "methods"} & set(sys.modules):  # the driver: at once
            spy_on_everything(setattr_)
            return

        class SpyOnFirstImport(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name not in ("suite", "methods"):
                    return None
                sys.meta_path.remove(self)
                spec = importlib.util.find_spec(name)  # by the finders after this one
                exec_module = spec.loader.exec_module

                def exec_then_spy(module) -> None:
                    exec_module(module)
                    spy_on_everything(setattr)

                spec.loader.exec_module = exec_then_spy
                return spec

        sys.meta_path.insert(0, SpyOnFirstImport())

    return install


@pytest.fixture(scope="module")
def spy_log(tmp_path_factory):
    """A local Ray runtime whose every worker process runs the spy hook at its start."""
    log = tmp_path_factory.mktemp("spy") / "calls.log"
    runtime = local_ray(tmp_path_factory, num_cpus=4, runtime_env={"worker_process_setup_hook": _spy_hook(str(log))})
    next(runtime)
    try:
        yield log
    finally:
        runtime.close()  # shuts Ray down


def test_a_sweep_trial_is_resolved_once_on_the_driver_and_its_notes_reach_the_row(spy_log, tmp_path, monkeypatch):
    spec = spec_from_dict(
        dict(
            name="once",
            base=dict(BASE),
            # DINO for 1 epoch: a shortened warm-up and a teacher-temperature schedule longer than the run;
            # SimCLR on two Ray Train workers: the data-parallel path, with its own shortened warm-up
            cases=[{"method": "dino", "method_args": SMALL_DINO}, {"method": "simclr", "workers": 2}],
            retries=0,
            results_dir=str(tmp_path / "results"),
        )
    )
    notes = {t.trial_id: "; ".join(t.resolved.notes) for t in expand_grid(spec)}  # before anything is watched
    assert "teacher-temperature warm-up" in next(iter(notes.values()))
    assert all("warmup_epochs shortened" in n for n in notes.values())
    assert not TrialConfig.__private_attributes__  # the notes live in the resolved value, not on the model

    _spy_hook(str(spy_log))(monkeypatch.setattr)  # this process, the sweep's driver, is watched too
    outcome = run_sweep(spec, quiet=True)

    trials = outcome.trials.set_index("trial_id")
    assert list(trials.index) == list(notes) and (trials["status"] == "completed").all(), trials["error"]
    for trial_id, resolved_notes in notes.items():
        row_notes = trials.loc[trial_id, "notes"]
        assert row_notes.startswith(resolved_notes), (row_notes, resolved_notes)

    calls = [line.split() for line in spy_log.read_text().splitlines()]
    driver = str(os.getpid())
    on_driver = Counter(name for pid, name in calls if pid == driver)
    in_workers = Counter(name for pid, name in calls if pid != driver)
    # each trial resolved exactly once, on the driver, when the grid was expanded
    assert on_driver == Counter(resolve=2, model_validate=2, build_hparams=2, parse_spec=2), on_driver
    # the workers trained (one Tune actor, two Ray Train workers) and resolved, validated and parsed nothing
    assert in_workers == Counter(run_trial=3), in_workers
