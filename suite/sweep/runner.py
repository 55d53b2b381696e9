"""Run a sweep with Ray Tune: plan, connect to Ray, schedule, collect.

`run_sweep` is a sequence of named steps: `plan_sweep` (every check that can fail -- spec, every
trial config, resolved once, storage state), `preview` (``--dry-run``: the cluster's capacity and
the plan), `build_tuner` (the Tuner, or the restored one of ``--resume``), `run_trials` (the trials, with
the signals that stop them) and `collect_outcome` (the tables finished, the outcome). Order matters
for the user: every check that can fail runs before the first trial starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from suite.core.errors import ConfigError
from suite.results import schema
from suite.results import store as results
from suite.sweep.grid import PlannedTrial, check_fits_cluster, expand_grid, format_plan, trial_items
from suite.sweep.spec import SweepSpec

LOG_FILE = "sweep.log"  # Ray's own output, unless --verbose


@dataclass
class SweepOutcome:
    results_dir: Path
    experiment_path: str
    trials: pd.DataFrame
    interrupted: str = ""  # the signal that stopped the sweep ("" when it ran to the end)
    log_file: Path | None = None
    summary: str = ""  # the per-trial table printed at the end

    @property
    def num_failed(self) -> int:
        """Trials that neither completed nor were stopped early by the scheduler."""
        return int((~self.trials[schema.STATUS].isin(schema.FINISHED_STATUSES)).sum()) if len(self.trials) else 0


def experiment_path(spec: SweepSpec) -> str:
    return f"{spec.storage_path().rstrip('/')}/{spec.name}"


def sweep_settings(spec: SweepSpec) -> dict[str, Any]:
    """What every trial needs to know about the sweep."""
    fault = spec.fault_injection.model_dump() if spec.fault_injection else None
    return {
        "name": spec.name,
        "results_dir": str(spec.results_path()),
        "retries": spec.retries,
        "train_storage": f"{experiment_path(spec)}/_train",
        "fault": fault,
    }


def param_space(spec: SweepSpec, trials: list[PlannedTrial]) -> dict[str, Any]:
    """Tune grid over the expanded trials (each a `TrialItem` with its resolved config)
    plus what every trial needs to know about the sweep. A search sweep's
    trials come from its searcher (`suite.sweep.search`), not from a grid."""
    from ray import tune

    if spec.search is not None:
        return {"sweep": sweep_settings(spec)}
    return {"trial": tune.grid_search(trial_items(spec, trials)), "sweep": sweep_settings(spec)}


def tune_config(spec: SweepSpec, trials: list[PlannedTrial]):
    from ray import tune

    from suite.sweep.trainable import trial_dirname

    common = dict(
        max_concurrent_trials=spec.max_concurrent_trials,
        trial_name_creator=trial_dirname,
        trial_dirname_creator=trial_dirname,
        reuse_actors=True,
    )
    if spec.search is None:
        return tune.TuneConfig(**common)
    from suite.sweep.searchers import build_search

    searcher, scheduler, total = build_search(spec, trials)
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=total, **common)


CONNECT_TIMEOUT_S = 60.0


def _recorded_cluster() -> str | None:
    """The address that ``--address auto`` joins: RAY_ADDRESS, else the head the last ``ray start``
    on this machine recorded in ``ray_current_cluster`` under Ray's default temp directory
    ($RAY_TMPDIR, else $TMPDIR on Linux, else /tmp, then ``ray/``). Resolved here rather than through
    Ray's private ``services`` module; if Ray ever records it elsewhere this finds nothing and
    the sweep says so instead of hanging. Unlike Ray's own ``auto``, a Ray runtime merely running on
    this machine (another process's local one) is never joined: only what ``ray start`` recorded."""
    if os.environ.get("RAY_ADDRESS", "").strip():
        return os.environ["RAY_ADDRESS"].strip()
    linux_tmp = os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None
    root = os.environ.get("RAY_TMPDIR") or linux_tmp or "/tmp"
    try:
        return (Path(root) / "ray" / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _gcs_endpoint(address: str) -> tuple[str, int] | None:
    """host:port that must answer for ``address`` (``auto`` resolved as Ray resolves it);
    None when Ray starts a local runtime (``local``)."""
    allowed = "host:port of a running Ray head, ray://host:port, auto or local"
    target = address.split("://", 1)[1] if address.startswith("ray://") else address
    if target == "local":
        return None
    if target == "auto":
        target = _recorded_cluster()
        if target is None:
            raise ConfigError(
                "--address",
                address,
                allowed,
                hint="auto joins RAY_ADDRESS or the cluster the last `ray start` on this machine recorded, and "
                "neither is set; give the head's host:port, or leave --address out to start a local Ray",
            )
        target = target.split("://", 1)[1] if target.startswith("ray://") else target
    host, _, port = target.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--address", address, allowed, hint=f"{target!r} is not host:port")
    return host.strip("[]"), int(port)


def wait_for_cluster(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` when nothing listens at the cluster's address
    (``ray.init`` would retry a dead GCS for as long as you wait)."""
    endpoint = _gcs_endpoint(address)
    if endpoint is None:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(endpoint, timeout=min(5.0, max(timeout_s, 0.1))):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                host, port = endpoint
                raise ConfigError(
                    "--address",
                    address,
                    "the address of a running Ray cluster's head node",
                    hint=f"nothing answered at {host}:{port} for {timeout_s:g} s ({exc.strerror or exc}); check that "
                    f"the head is up (`ray status --address {host}:{port}` on it), that the port is open from "
                    "here, and that RAY_ADDRESS is not stale; without --address the sweep starts its own "
                    "local Ray",
                ) from None
            time.sleep(1.0)


def _connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S, log_to_driver: bool = True) -> bool:
    """Join the cluster at ``address``, or start a private local Ray when there is
    none; True if we started or joined it (and so shut it down at the end).

    Without an address (and no RAY_ADDRESS) Ray would attach to the cluster
    recorded in its ``ray_current_cluster`` file, which after a crash names a
    dead address and hangs; ``address="local"`` always starts a fresh runtime."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None  # set explicitly, e.g. by `ray job submit`
    if address is None:
        ray.init(address="local", log_to_driver=log_to_driver)
        return True
    wait_for_cluster(address, timeout_s)
    ray.init(address=address, log_to_driver=log_to_driver)
    return True


def _cluster_nodes() -> tuple[dict[str, float], list[dict[str, float]]]:
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes


def _check_update(spec: SweepSpec, resume: bool) -> None:
    if resume:
        raise ConfigError(
            "--update",
            True,
            "not together with --resume",
            hint="--resume continues the run as it was started; --update runs the spec as it is now",
        )
    if spec.search is not None:
        raise ConfigError(
            "--update",
            True,
            "a sweep without `search:`",
            hint="a searched sweep draws new trials every run; give it a new --name instead",
        )


def _drop_experiment_state(exp_path: str) -> None:
    """`--update`: the previous run's Tune state (and its checkpoints) goes; the
    results directory, with each finished trial's folder and the tables, stays."""
    if "://" in exp_path:
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(exp_path)
        fs.delete_dir(path)
    else:
        shutil.rmtree(exp_path)


def require_train_v2() -> None:
    """The trainable drives a Ray Train `TorchTrainer` from inside a Tune function trainable and
    restores a retried Train run by its (storage_path, name): Ray Train V2 behaviour, the
    default since the Ray release pyproject.toml requires. Turned off, Train V1 would run
    each data-parallel trial as a nested Tune experiment and lose that restore."""
    value = os.environ.get("RAY_TRAIN_V2_ENABLED")
    if value is not None and value.lower() not in ("1", "true"):  # Ray reads only these two as "on"
        raise ConfigError(
            "RAY_TRAIN_V2_ENABLED",
            value,
            "unset, 1 or true",
            hint="normbench sweeps need Ray Train V2 (the data-parallel trials restore by run name)",
        )


def _check_storage(
    spec: SweepSpec, resume: bool, update: bool, dry_run: bool = False, echo: Callable[[str], None] = print
) -> tuple[str, bool]:
    """(experiment path, whether a sweep of this name exists there): --resume needs one, a plain run none.
    A dry run that cannot reach remote storage (no credentials or network on this machine) says so and goes
    on; the launch checks again."""
    from ray import tune

    exp_path = experiment_path(spec)
    try:
        exists = tune.Tuner.can_restore(exp_path)
    except Exception as exc:  # pyarrow's filesystems raise OSError, ValueError or their own errors
        if not dry_run:
            raise ConfigError(
                "storage", exp_path, "a storage path this machine can read and write", hint=str(exc).splitlines()[0]
            ) from exc
        echo(f"note: storage {exp_path} not reachable from here ({str(exc).splitlines()[0][:120]}); not checked")
        return exp_path, False
    if resume and not exists:
        raise ConfigError(
            "--resume",
            exp_path,
            "the storage path of a sweep started before under this name",
            hint="no Tune state there, as in a fresh clone: run without --resume; finished trials in "
            f"{spec.results_path()} are kept and the rest train",
        )
    if not resume and not update and exists:
        raise ConfigError(
            "name",
            spec.name,
            "a sweep name not used yet in this storage",
            hint=f"{exp_path} exists: pass --resume to continue it, --update to run the changed spec "
            "over it (unchanged finished trials are kept), or --name NEW",
        )
    return exp_path, exists


def _local_resources() -> tuple[dict[str, float], list[dict[str, float]]]:
    """What a private local Ray runtime of this machine offers (the dry run checks against it)."""
    import torch

    from suite.core.machine import available_cpus

    node = {"CPU": float(available_cpus()), "GPU": float(torch.cuda.device_count() if torch.cuda.is_available() else 0)}
    return node, [node]


def sweep_metric(spec: SweepSpec, trials: list[PlannedTrial]) -> tuple[str, bool]:
    """The metric the console ranks by: the search's, else the trials' primary kNN (knn_k[0])."""
    if spec.search is not None:
        return spec.search.metric, spec.search.mode == "max"
    return (schema.knn(schema.primary_k(trials[0].config.knn_k)) if trials else schema.FINAL_LOSS), True


def _distinct_notes(trials: list[PlannedTrial]) -> dict[str, int]:
    """The values the suite changed on the user's behalf, once each, with how many trials they concern."""
    counts: dict[str, int] = {}
    for t in trials:
        for note in t.resolved.notes:
            counts[note] = counts.get(note, 0) + 1
    return counts


class _SigtermToTune:
    """SIGTERM (a scheduler, a spot instance) stops the sweep the way Ctrl-C does: Tune stops gracefully on
    SIGUSR1 too, saving its state so --resume continues."""

    def __enter__(self):
        self.received = False
        self.saved = signal.getsignal(signal.SIGTERM)
        self.install()
        return self

    def install(self) -> None:
        """(Again:) ``ray.init`` installs its own SIGTERM handler, which exits at once."""

        def forward(signum, frame):
            self.received = True
            if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):  # Tune not fitting yet
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGUSR1)

        signal.signal(signal.SIGTERM, forward)

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self.saved)


@dataclass(frozen=True)
class SweepPlan:
    """A sweep checked and planned (`plan_sweep`): its trials, each with its resolved config, and where
    Tune keeps its state."""

    spec: SweepSpec
    trials: list[PlannedTrial]
    experiment_path: str
    exists: bool  # a sweep of this name is stored there already (--resume, --update)

    @property
    def results_dir(self) -> Path:
        return self.spec.results_path()

    @property
    def total(self) -> int:
        """Trials to run (a searched sweep: every cell's samples)."""
        return len(self.trials) * (self.spec.search.num_samples if self.spec.search else 1)

    def tables(self):
        """The sweep's tables (`suite.sweep.tables.SweepTables`): the planned trials of a grid; a searched
        sweep registers its trials as they are drawn."""
        from suite.sweep.tables import SweepTables

        searched = self.spec.search is not None
        planned = {t.trial_id: (t.index, results.flatten_config(t.config.model_dump())) for t in self.trials}
        return SweepTables(self.results_dir, self.spec.name, {} if searched else planned, searched=searched)


def plan_sweep(
    spec: SweepSpec,
    *,
    resume: bool = False,
    update: bool = False,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> SweepPlan:
    """Every check that needs no Ray runtime, in the order a user meets them: Ray Train V2, ``--update``'s
    terms, the grid (each trial's config resolved, once), ``search:`` and ``tracking:``, the storage."""
    require_train_v2()
    if update:
        _check_update(spec, resume)
    trials = expand_grid(spec)
    from suite.sweep.search import validate_search
    from suite.tracking.spec import validate_tracking

    validate_search(spec, trials)
    validate_tracking(spec.tracking)
    exp_path, exists = _check_storage(spec, resume, update, dry_run, echo)
    return SweepPlan(spec, trials, exp_path, exists)


def preview(
    plan: SweepPlan,
    address: str | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    echo: Callable[[str], None] = print,
) -> None:
    """``--dry-run``: the capacity check the launch makes (against the cluster at ``address``, else this
    machine's local runtime, where a refusal is a note), then the plan; starts nothing."""
    spec, trials = plan.spec, plan.trials
    if spec.resources.check_cluster:
        if address or os.environ.get("RAY_ADDRESS"):
            started = _connect(address, connect_timeout_s)
            try:
                check_fits_cluster(spec, trials, *_cluster_nodes())
            finally:
                if started:
                    import ray

                    ray.shutdown()
        else:
            try:
                check_fits_cluster(spec, trials, *_local_resources())
            except ConfigError as exc:  # a plan for a cluster, previewed on a laptop: say so, don't refuse
                echo(f"note: a launch on this machine would stop: {exc}; pass --address to check a cluster")
    echo(format_plan(spec, trials))


def _announce(plan: SweepPlan, log_file: Path, verbose: bool, echo: Callable[[str], None]) -> None:
    """The sweep's first lines: its size and where things go, then each note of the trials' resolution
    once, with how many trials it concerns."""
    echo(
        f"sweep {plan.spec.name}: {plan.total} trial(s), results in {plan.results_dir}"
        + ("" if verbose else f"; Ray's output in {log_file} (--verbose shows it here)")
    )
    for note, count in _distinct_notes(plan.trials).items():
        echo(f"note: {note}" + (f" ({count} trials)" if count > 1 else ""))


def _tune_environment() -> None:
    """What Tune reads from the environment, set unless the user set it."""
    # Trials keep the driver's working directory, so relative dataset paths work.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # num_to_keep=1 below snapshots the experiment state on purpose; silence Tune's
    # warning that this snapshotting is frequent.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def build_tuner(plan: SweepPlan, tables, resume: bool = False, verbose: bool = False):
    """The Tuner of a new run (its grid or searcher, the tables callback over ``tables``, the tracking
    callbacks), or, with ``resume``, the one Tune restores from the experiment path (callbacks included)."""
    from ray import tune

    from suite.sweep.tables import TablesCallback
    from suite.sweep.trainable import sweep_trial, tune_resources
    from suite.tracking.tune import tracking_callbacks

    spec = plan.spec
    trainable = tune.with_resources(sweep_trial, tune_resources)
    if resume:
        # The param space again: Tune keeps each trial's resolved config and request as placeholders in its
        # experiment state and resolves them from the param space it is given (the same grid, so the same ids).
        return tune.Tuner.restore(
            plan.experiment_path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=param_space(spec, plan.trials),
        )
    fault = spec.fault_injection
    exit_after = (
        (fault.driver_exit_after_trials, fault.marker_dir) if fault and fault.driver_exit_after_trials else None
    )
    return tune.Tuner(
        trainable,
        param_space=param_space(spec, plan.trials),
        tune_config=tune_config(spec, plan.trials),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage_path(),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            # Keeping one checkpoint per trial also makes Tune save the experiment
            # state after every checkpoint, so `--resume` after a dead driver
            # never restarts a trial from an older checkpoint than it reported.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[
                TablesCallback(tables, exit_after),
                *tracking_callbacks(spec.tracking, spec.name, plan.results_dir),
            ],
            verbose=1 if verbose else 0,
        ),
    )


def run_trials(
    plan: SweepPlan,
    tables,
    sigterm: _SigtermToTune,
    ray_log,
    *,
    address: str | None,
    resume: bool,
    update: bool,
    connect_timeout_s: float,
    verbose: bool,
    echo: Callable[[str], None],
) -> str:
    """Connect to (or start) Ray, make the launch's checks against the cluster, then run the trials;
    returns "SIGINT" when a second Ctrl-C stopped Tune at once, else "". Trial errors are recorded in
    the tables, not raised."""
    spec = plan.spec
    started = _connect(address, connect_timeout_s, log_to_driver=verbose)
    sigterm.install()
    try:
        if spec.resources.check_cluster:
            check_fits_cluster(spec, plan.trials, *_cluster_nodes())
        plan.results_dir.mkdir(parents=True, exist_ok=True)  # every check passed: the sweep may write
        ray_log.open()
        if update and plan.exists:
            _drop_experiment_state(plan.experiment_path)
            echo(
                f"updating sweep {spec.name}: the previous run's Tune state in {plan.experiment_path} is "
                f"replaced; finished trials whose config is unchanged are kept from {plan.results_dir}"
            )
        tuner = build_tuner(plan, tables, resume, verbose)
        interrupted = ""
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            interrupted = "SIGINT"
        from suite.sweep.tables import close_active

        close_active()
        if spec.tracking is not None and not interrupted:
            from suite.tracking.tune import log_sweep_plots

            log_sweep_plots(spec.tracking, spec.name, plan.results_dir)
        return interrupted
    finally:
        if started:
            import ray

            ray.shutdown()


def collect_outcome(
    plan: SweepPlan,
    tables,
    interrupted: str,
    console,
    log_file: Path,
    resume_command: str = "",
) -> SweepOutcome:
    """The tables as every driver of this sweep left them (re-read: a restored run's callback kept its
    own), unfinished trials marked ``interrupted`` when the sweep was stopped, and the outcome."""
    tables.open()
    unfinished = [t for t, r in tables.rows().items() if r.get(schema.STATUS) == schema.RUNNING]
    if unfinished or interrupted:
        interrupted = interrupted or "SIGINT"
        hint = f"; continue with: {resume_command}" if resume_command else ""
        tables.interrupt(f"stopped by {interrupted}{hint}")
    tables.close()
    order = {t.trial_id: t.index for t in plan.trials}
    table = results.read_tables(plan.results_dir, ["trials"], order=order or None)["trials"]
    return SweepOutcome(
        plan.results_dir,
        plan.experiment_path,
        table if table is not None else pd.DataFrame(),
        interrupted,
        log_file,
        _with_unstarted(
            console.summary(list(tables.rows().values())) if tables.rows() else "",
            [] if plan.spec.search else plan.trials,
            tables,
        ),
    )


def run_sweep(
    spec: SweepSpec,
    *,
    address: str | None = None,
    resume: bool = False,
    update: bool = False,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    verbose: bool = False,
    quiet: bool = False,
    resume_command: str = "",
) -> SweepOutcome | None:
    """Run (or, with ``resume``, continue) the sweep; None for a dry run, which makes every check the real
    run makes (the cluster's capacity: that of this machine's local runtime, or of the cluster at
    ``address``) and starts nothing.

    ``update`` runs the spec as it is now over a sweep that ran before under this
    name: a trial whose config did not change and that finished is kept as it is
    (its folder holds its final result), changed and new trials train, trials no
    longer in the spec leave the tables (their folders stay). Stopped by SIGINT or
    SIGTERM, the sweep writes its tables, marks its unfinished trials ``interrupted``
    and returns with ``interrupted`` set (``resume_command`` continues it)."""
    plan = plan_sweep(spec, resume=resume, update=update, dry_run=dry_run, echo=echo)
    if dry_run:
        preview(plan, address, connect_timeout_s, echo)
        return None

    from suite.sweep import console as sweep_console

    _tune_environment()
    log_file = plan.results_dir / LOG_FILE
    if not quiet:
        _announce(plan, log_file, verbose, echo)
    metric, higher = sweep_metric(spec, plan.trials)
    console = sweep_console.SweepConsole(spec.name, plan.total, metric, higher, quiet=quiet, stream=sys.stderr)
    tables = plan.tables()  # built once: the new run's callback feeds it, the outcome reads it
    with (
        sweep_console.active(console),
        _SigtermToTune() as sigterm,
        sweep_console.ray_output_to(log_file, verbose) as ray_log,
    ):
        interrupted = run_trials(
            plan,
            tables,
            sigterm,
            ray_log,
            address=address,
            resume=resume,
            update=update,
            connect_timeout_s=connect_timeout_s,
            verbose=verbose,
            echo=echo,
        )
    if sigterm.received:
        interrupted = "SIGTERM"
    return collect_outcome(plan, tables, interrupted, console, log_file, resume_command)


def _with_unstarted(summary: str, trials, tables) -> str:
    """The summary, and how many planned trials never started (a stopped sweep runs them on --resume)."""
    never = [t.trial_id for t in trials if t.trial_id not in tables.rows()]
    if not never:
        return summary
    shown = ", ".join(never[:5]) + (f", … ({len(never) - 5} more)" if len(never) > 5 else "")
    line = f"{len(never)} of {len(trials)} planned trial(s) never started: {shown}"
    return f"{summary}\n{line}" if summary else line
