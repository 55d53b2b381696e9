"""The command line as a user runs it, in subprocesses (the analysis steps after a trial in process):
overrides after flags, the modes of every file written, interruptions by SIGINT and SIGTERM recorded
and resumed, the sweep console, faults (a full disk, a truncated checkpoint) as one line and a state."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from support import REPO, free_port

from suite.cli import main as normbench

TINY = [
    "backbone=test_resnet",
    "image_size=16",
    "batch_size=64",
    "train_limit=192",
    "linear_epochs=5",
    "eval_batch_size=512",
]
PYTHON_CLI = [sys.executable, "-m", "suite.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NORMBENCH_CACHE": str(tmp_path / "cache"),
        "RAY_ADDRESS": "",  # a private local runtime, whatever the machine has running
    }


def _as_from_a_terminal(umask: int | None = None) -> None:
    """In the child before it executes: Ctrl-C's default action, as a command started from a terminal has
    it. A shell starts background jobs with SIGINT ignored (`make test &`), and Python then installs no
    KeyboardInterrupt handler, so the stop these tests send would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if umask is not None:
        os.umask(umask)


def _run(
    argv: list[str], tmp_path: Path, umask: int | None = None, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PYTHON_CLI, *argv],
        cwd=tmp_path,
        env={**_env(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: _as_from_a_terminal(umask),
    )


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*PYTHON_CLI, *argv],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal reaches the command only, as `kill PID` would
        preexec_fn=_as_from_a_terminal,
    )


def _wait_for(path_glob: tuple[Path, str], proc: subprocess.Popen, timeout: float = 240) -> Path:
    root, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern)) if root.exists() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"the command ended (rc {proc.returncode}) first:\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"nothing matched {pattern} under {root} within {timeout} s")


def _resume_argv(stderr: str, program: str) -> list[str]:
    """The command the interruption message prints (`continue with: normbench ...`), as argv for PYTHON_CLI."""
    line = next(line for line in stderr.splitlines() if "continue with: " in line)
    argv = shlex.split(line.split("continue with: ", 1)[1])
    assert argv[:2] == ["normbench", program] and argv[-1] == "--resume", line
    return argv[1:]


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    saved = os.umask(mask)
    try:
        yield
    finally:
        os.umask(saved)


def _modes_follow(root: Path, umask: int) -> list[str]:
    """Every file and folder under root whose permission bits are not what open()/mkdir() give under umask."""
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        if not path.is_symlink() and mode != want:
            wrong.append(f"{path.relative_to(root)}: {oct(mode)} (want {oct(want)})")
    return wrong


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_flags_then_overrides_and_every_file_follows_the_umask(tmp_path, umask):
    out = tmp_path / "res"
    # Flags first, overrides after them, a flag again between overrides: the way users type it.
    trial = _run(
        ["trial", "--out", str(out), "method=byol", *TINY, "--quiet", "epochs=2", "checkpoint_every=1"], tmp_path, umask
    )
    assert trial.returncode == 0, trial.stderr[-3000:]
    (trial_dir,) = [p for p in out.iterdir() if p.is_dir()]
    row = json.loads((trial_dir / "result.json").read_text())
    assert row["method"] == "byol" and row["epochs"] == 2 and row["status"] == "completed"
    assert (trial_dir / "checkpoints" / "last" / "state.pt").is_file()
    steps = [
        ["claims", str(out)],
        ["leaderboard", str(out)],
        ["report", str(out), "--out", str(out / "page" / "report.html")],
        ["export", str(trial_dir), "--out", str(tmp_path / "exported")],
    ]
    for argv in steps:  # in this process (the same `main` the console script calls), under the same umask
        with _umask(umask):
            assert normbench(argv) == 0, argv
    kinds = {p.suffix for p in out.rglob("*") if p.is_file()} | {
        p.suffix for p in (tmp_path / "exported").rglob("*") if p.is_file()
    }
    # trial files, tables, checkpoints, leaderboard, claims, plots, page and the exported backbone
    assert {".json", ".yaml", ".csv", ".parquet", ".pt", ".md", ".tex", ".png", ".html", ".safetensors"} <= kinds
    assert _modes_follow(out, umask) == [] and _modes_follow(tmp_path / "exported", umask) == []


def _curve_epochs(trial_dir: Path) -> list[int]:
    return [int(e) for e in pd.read_csv(trial_dir / "curves.csv")["epoch"]]


# Each signal is recorded; what comes after (the leaderboard, the resume command) does not depend on which
# signal it was, so one of them goes on to it.
STOPS = [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, then_resume", STOPS)
def test_a_stopped_trial_is_recorded_interrupted_and_its_resume_command_completes_it(
    tmp_path, signum, code, then_resume
):
    out = tmp_path / "res"
    epochs = 8  # the signal goes as epoch 1's checkpoint appears: on a loaded machine it needs epochs left to land in
    proc = _start(["trial", *TINY, f"epochs={epochs}", "checkpoint_every=1", "--out", str(out), "--quiet"], tmp_path)
    _wait_for((out, "*/checkpoints/last/state.pt"), proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    (trial_dir,) = [p for p in out.iterdir() if p.is_dir()]
    row = json.loads((trial_dir / "result.json").read_text())
    name = signal.Signals(signum).name
    assert row["status"] == "interrupted" and f"stopped by {name}" in row["error"], row
    done = row["epochs_completed"]
    assert 1 <= done < epochs and row["last_checkpoint"].startswith(f"epoch {done} (")
    table = pd.read_csv(out / "trials.csv")
    assert list(table["status"]) == ["interrupted"]  # in the tables, not only in result.json
    resume_argv = _resume_argv(stderr, "trial")  # the command the message prints, checked either way
    if not then_resume:
        return
    assert normbench(["leaderboard", str(out), "--formats", "md", "--no-plots"]) == 0  # in process: as the CLI
    failed = (
        (out / "leaderboard" / "leaderboard.md").read_text().split("## Failed, interrupted or incomplete trials")[1]
    )
    assert failed.startswith(" (1)") and trial_dir.name in failed and "interrupted" in failed

    resumed = _run(resume_argv, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((trial_dir / "result.json").read_text())["status"] == "completed"
    assert _curve_epochs(trial_dir) == list(range(1, epochs + 1))  # every epoch once (no eval_every: no epoch 0)
    assert list(pd.read_csv(out / "trials.csv")["status"]) == ["completed"]


def _spec(tmp_path: Path, name: str, epochs: int, seeds: list[int], **extra) -> Path:
    base = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in TINY)}
    spec = {
        "name": name,
        "base": {**base, "epochs": epochs, "checkpoint_every": 1},
        "seeds": seeds,
        "resources": {"cpus_per_worker": 1},
        "results_dir": str(tmp_path / "results" / name),
        "storage": str(tmp_path / "ray_results"),
        "retries": 0,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_console_is_short_its_files_follow_the_umask_and_a_dry_run_refuses_the_used_name(tmp_path):
    """Also: Ray records the last `ray start` cluster under $TMPDIR/ray; after that cluster died, a sweep
    without --address must start its own Ray, not hang (one Ray start covers both)."""
    spec = _spec(tmp_path, "four", epochs=2, seeds=[0, 1, 2, 3])
    short_tmp = Path(tempfile.mkdtemp(prefix="nb", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        (short_tmp / "ray").mkdir()
        (short_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")  # nothing listens
        proc = _run(["sweep", str(spec)], tmp_path, umask=0o027, timeout=600, env={"TMPDIR": str(short_tmp)})
    finally:
        subprocess.run(["pkill", "-f", str(short_tmp)], check=False)  # nothing of this Ray may outlive the test
        shutil.rmtree(short_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = (proc.stdout + proc.stderr).splitlines()
    print("\n".join(console))
    assert len(console) <= 40, f"{len(console)} lines"
    notes = [line for line in console if line.startswith("note: warmup_epochs shortened")]
    assert len(notes) == 1 and notes[0].endswith("(4 trials)")  # said once, for every trial it concerns
    results = tmp_path / "results" / "four"
    assert f"Ray's output in {results / 'sweep.log'}" in proc.stdout
    assert sum("completed" in line for line in console) >= 4 and "Tuner.restore" not in proc.stdout + proc.stderr
    assert "╭" not in proc.stdout + proc.stderr  # Ray's boxes went to the log
    assert (results / "sweep.log").stat().st_size > 0
    assert list(pd.read_csv(results / "trials.csv")["status"]) == ["completed"] * 4
    assert _modes_follow(results, 0o027) == []
    # one copy of each checkpoint: Ray stores references, a completed trial keeps its last model only
    assert list((tmp_path / "ray_results").rglob("state.pt")) == []
    assert sorted(p.parent.name for p in results.rglob("state.pt")) == ["last"] * 4
    files = [p for root in (results, tmp_path / "ray_results") for p in root.rglob("*") if p.is_file()]
    on_disk = sum(p.stat().st_size for p in files)
    assert on_disk < 20 * 2**20, f"{on_disk / 2**20:.1f} MiB"

    again = _run(["sweep", str(spec), "--dry-run"], tmp_path)
    assert again.returncode == 2 and "name: invalid value 'four'" in again.stderr and "--resume" in again.stderr


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("signum, code, then_resume", STOPS)
def test_a_stopped_sweep_marks_unfinished_trials_interrupted_and_its_resume_command_completes_them(
    tmp_path, signum, code, then_resume
):
    epochs = 8
    spec = _spec(tmp_path, "stopped", epochs=epochs, seeds=[0, 1])
    results = tmp_path / "results" / "stopped"
    proc = _start(["sweep", str(spec)], tmp_path)
    _wait_for((results, "*/checkpoints/last/state.pt"), proc, timeout=300)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, (stdout + stderr)[-3000:]
    assert "Tuner.restore" not in stdout + stderr and "Traceback" not in stderr
    table = pd.read_csv(results / "trials.csv")
    assert set(table["status"]) <= {"interrupted", "completed"} and "interrupted" in set(table["status"])
    name = signal.Signals(signum).name
    assert all(f"stopped by {name}" in e for e in table.loc[table["status"] == "interrupted", "error"])
    for r in table.itertuples():  # each trial's own result.json says what the tables say, read from its files
        recorded = json.loads((results / r.trial_id / "result.json").read_text())
        assert recorded["status"] == r.status and recorded["epochs_completed"] == r.epochs_completed, recorded
        if r.status == "interrupted":
            assert r.epochs_completed == max(_curve_epochs(results / r.trial_id), default=0)
            saved = sorted((results / r.trial_id).glob("checkpoints/last/state.pt"))
            assert recorded["last_checkpoint"] == (r.last_checkpoint if saved else "")
            assert (str(r.last_checkpoint).startswith("epoch ")) == bool(saved)
    resume_argv = _resume_argv(stderr, "sweep")  # the command the message prints, checked either way
    if not then_resume:
        return
    assert normbench(["leaderboard", str(results), "--formats", "md", "--no-plots"]) == 0  # in process
    failed = (results / "leaderboard" / "leaderboard.md").read_text().split("incomplete trials")[1]
    assert "interrupted" in failed

    resumed = _run(resume_argv, tmp_path, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    table = pd.read_csv(results / "trials.csv")
    assert list(table["status"]) == ["completed", "completed"]
    curves = pd.read_parquet(results / "curves.parquet")
    for _, epochs_seen in curves.groupby("trial_id")["epoch"]:
        assert sorted(epochs_seen) == list(range(1, epochs + 1))  # no epoch trained twice or lost


def _mount_tmpfs(where: Path, size_bytes: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(where)], capture_output=True, timeout=30
    )
    return proc.returncode == 0


def _state_size(tmp_path: Path) -> int:
    """The size of this test's trial checkpoint while it trains (model and optimizer state; a completed
    trial keeps less), saved here the way the trainer saves it."""
    import yaml

    from suite.config import make_config
    from suite.trial import checkpoint as ckpt
    from suite.trial.optim import build_optimizer
    from suite.trial.train import build_model

    cfg = make_config({k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in [*TINY, "epochs=1"])})
    method = build_model(cfg)
    optimizer = build_optimizer(method, cfg.optimizer, cfg.scaled_lr(), cfg.weight_decay, cfg.momentum)
    method(  # one step, so the optimizer holds its momentum buffers as in training
        [torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size) for _ in range(2)]
    ).loss.backward()
    optimizer.step()
    return (ckpt.save(tmp_path / "sizing", method, optimizer, cfg, ckpt.TrainState()) / ckpt.STATE_FILE).stat().st_size


@pytest.mark.slow
def test_a_full_disk_gives_one_line_a_failed_state_and_resume_continues_from_the_kept_checkpoint(tmp_path):
    size = _state_size(tmp_path)
    disk = tmp_path / "disk"
    # Room for two checkpoints (last and previous) and the trial's small files, not for a third being staged.
    if not _mount_tmpfs(disk, int(2.6 * size) + 512 * 1024):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the file-size-limit test covers faults")
    try:
        out = disk / "res"
        epochs = 4
        proc = _run(["trial", *TINY, f"epochs={epochs}", "checkpoint_every=1", "--out", str(out), "--quiet"], tmp_path)
        assert proc.returncode == 1, proc.stderr[-3000:]
        message = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(message) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert message[0].startswith("normbench: error: no space left on the device writing ")
        assert "--resume" in message[0] and "the last complete checkpoint is epoch" in message[0]
        (trial_dir,) = [p for p in out.iterdir() if p.is_dir()]
        row = json.loads((trial_dir / "result.json").read_text())
        assert row["status"] == "failed" and row["error"] in message[0]
        done = row["epochs_completed"]
        assert 1 <= done < epochs
        assert not list(trial_dir.rglob(".*.next")) and not list(trial_dir.rglob("*.tmp*"))  # nothing half-written
        # The user frees space (here: moves the trial to a larger disk), then resumes.
        big = tmp_path / "big"
        subprocess.run(["cp", "-a", str(out), str(big)], check=True)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)
    resumed = _run(["trial", *TINY, f"epochs={epochs}", "checkpoint_every=1", "--out", str(big), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {trial_dir.name}" in resumed.stdout
    assert _curve_epochs(big / trial_dir.name) == list(range(1, epochs + 1))


@pytest.mark.slow
def test_a_file_size_limit_gives_one_line_and_a_failed_state(tmp_path):
    """Where no tmpfs can be mounted: the kernel refuses writes past RLIMIT_FSIZE (EFBIG), as a quota would."""
    import resource

    size = _state_size(tmp_path)
    out = tmp_path / "res"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    proc = subprocess.run(
        [*PYTHON_CLI, "trial", *TINY, "epochs=2", "--out", str(out), "--quiet"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("normbench: error: file too large"), proc.stderr[-3000:]
    assert "state.pt" in lines[0] and "--resume" in lines[0]
    (trial_dir,) = [p for p in out.iterdir() if p.is_dir()]
    row = json.loads((trial_dir / "result.json").read_text())
    assert row["status"] == "failed" and row["epochs_completed"] == 1 and "file too large" in row["error"]


@pytest.mark.slow
def test_a_truncated_checkpoint_falls_back_to_the_previous_one_and_resume_completes(tmp_path):
    out = tmp_path / "res"
    epochs = 8  # epochs left to run when the signal lands, on a loaded machine too
    proc = _start(["trial", *TINY, f"epochs={epochs}", "checkpoint_every=1", "--out", str(out), "--quiet"], tmp_path)
    _wait_for((out, "*/checkpoints/previous/state.pt"), proc)  # two checkpoints exist
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    (trial_dir,) = [p for p in out.iterdir() if p.is_dir()]
    last = trial_dir / "checkpoints" / "last" / "state.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # a torn copy, a disk error
    resumed = _run(["trial", *TINY, f"epochs={epochs}", "checkpoint_every=1", "--out", str(out), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert "unreadable" in resumed.stderr and "previous" in resumed.stderr  # the note, printed once
    row = json.loads((trial_dir / "result.json").read_text())
    assert row["status"] == "completed" and "unreadable" in row["notes"]
    assert _curve_epochs(trial_dir) == list(range(1, epochs + 1))

    # Both copies unreadable: one line, a state, and what to do.
    for name in ("last", "previous"):
        (trial_dir / "checkpoints" / name).mkdir(parents=True, exist_ok=True)
        (trial_dir / "checkpoints" / name / "state.pt").write_bytes(b"not a checkpoint")
    row["status"] = "interrupted"
    (trial_dir / "result.json").write_text(json.dumps(row))
    broken = _run(["trial", *TINY, f"epochs={epochs}", "--out", str(out), "--resume"], tmp_path)
    lines = [line for line in broken.stderr.splitlines() if line.strip()]
    assert broken.returncode == 1 and len(lines) == 1 and "Traceback" not in broken.stderr, broken.stderr[-3000:]
    assert "state.pt" in lines[0] and "--overwrite" in lines[0]
    assert json.loads((trial_dir / "result.json").read_text())["status"] == "failed"
