"""A run directory belongs to one run: a lock while it trains, a record of every attempt.

What eilab-train keeps in a run directory, beside Hydra's ``.hydra/`` and the logs:

- ``run.lock``: ``fcntl.flock``-ed by the process training there (its pid inside), for the
  whole run; a second run in the directory is refused, naming the directory and that pid.
- ``run.json``: written when training starts. It marks the directory as holding a run and
  records the checkpoints eilab-eval loads (``{"checkpoints": {"last": ..., "best": ...}}``),
  rewritten (atomically) after every checkpoint save.
- ``runs.jsonl``: per attempt, a ``start`` line (time, pid, Hydra overrides, where Hydra saved
  its config, the checkpoint it resumed, its CSV log version, its resolved config and what
  changed since the previous attempt) and an ``end`` line with its test metrics.

A directory holds an earlier run when it has any of :data:`MARKERS`. Training there is refused
unless the run is resumed (``resume=true``, or ``ckpt_path`` inside the directory). Hydra writes
``.hydra/`` before eilab's code runs, so the decision that protects the first attempt's files is
taken while Hydra resolves ``hydra.output_subdir`` (:func:`hydra_subdir`, registered by
eilab.train): the lock is taken there, the first attempt's config goes to ``.hydra/`` and any
later attempt's to ``.hydra/attempt-<time>/`` (removed again if that attempt is refused).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from eilab.atomic import atomic_file
from eilab.checkpoints import load_checkpoint
from eilab.confine import UnsafePathError, inside, open_nofollow, refuse_symlink

RUN_FILE, ATTEMPTS_FILE, LOCK_FILE = "run.json", "runs.jsonl", "run.lock"
METRICS_FILE = "metrics.json"
MARKERS = (RUN_FILE, "checkpoints", "logs", METRICS_FILE)
#: Checkpoint key under which eilab-train stamps :func:`identity` (see callbacks.StampIdentity).
IDENTITY_KEY = "eilab_identity"


class RunDirError(RuntimeError):
    """A run directory cannot be used as asked."""


class RunDirectoryInUseError(RunDirError):
    """Another process is training in the directory."""


class RunDirectoryNotEmptyError(RunDirError):
    """The directory holds an earlier run and resuming it was not asked for."""


class NothingToResumeError(RunDirError):
    """``resume=true`` but the directory holds no earlier run, or no recorded checkpoint."""


class ResumeMismatchError(RunDirError):
    """The checkpoint to resume was trained with another strategy, physics, size, model or data."""


@dataclass
class Attempt:
    """This process's attempt at a run directory, decided once (see :func:`attempt`)."""

    run_dir: Path
    name: str  # attempt-<time>
    first: bool  # the lock was free and no earlier run was there when it began
    lock: TextIO | None = None  # the open, flock-ed lock file while this process holds it
    resume_from: Path | None = None

    @property
    def hydra_subdir(self) -> str:
        """Where Hydra saves this attempt's config, overrides and hydra.yaml."""
        return ".hydra" if self.first else f".hydra/{self.name}"

    @property
    def log_version(self) -> str:
        """CSV log version: "" (``logs/``) for the first attempt, its name for a resumption."""
        return "" if self.first else self.name


_attempts: dict[Path, Attempt] = {}


def attempt(run_dir: str | os.PathLike) -> Attempt:
    """This process's attempt at ``run_dir``: on rank 0 it takes the lock if it is free."""
    key = Path(run_dir).resolve()
    if key not in _attempts:
        lock = take_lock(key) if rank_zero_only.rank == 0 else None
        first = (lock is not None or rank_zero_only.rank != 0) and not earlier_run(key)
        name = datetime.datetime.now().strftime("attempt-%Y-%m-%d_%H-%M-%S-%f")
        _attempts[key] = Attempt(key, name, first, lock)
    return _attempts[key]


def hydra_subdir(output_dir: str) -> str:
    """Resolver for ``hydra.output_subdir``: claims the directory before Hydra writes to it."""
    return attempt(output_dir).hydra_subdir


def earlier_run(run_dir: Path) -> list[str]:
    """The :data:`MARKERS` present in ``run_dir`` (empty: no earlier run)."""
    return [marker for marker in MARKERS if (run_dir / marker).exists()]


def take_lock(run_dir: Path) -> TextIO | None:
    """Hold ``run_dir/run.lock`` (this pid written inside), or None when another process does
    or it is a symlink (never followed: :func:`checked_start` refuses it, naming it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.fdopen(open_nofollow(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT), "r+")
    except UnsafePathError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def release(current: Attempt) -> None:
    """Unlock the directory and forget the attempt (a later run in this process starts anew)."""
    if current.lock is not None:
        fcntl.flock(current.lock, fcntl.LOCK_UN)
        current.lock.close()
        current.lock = None
    _attempts.pop(current.run_dir, None)


@contextlib.contextmanager
def claim(
    run_dir: Path, resume: bool, ckpt_path: str | None, run_identity: dict[str, Any]
) -> Iterator[Attempt]:
    """Hold ``run_dir`` for one attempt and set the checkpoint it resumes from.

    Refuses (before any work) a directory in use, an earlier run not asked to be resumed,
    ``resume=true`` with nothing to resume, and a checkpoint that is damaged or stamped with
    another :func:`identity` than ``run_identity``; a refused attempt leaves no trace. Ranks
    other than 0 only follow rank 0's choice.
    """
    if rank_zero_only.rank != 0:
        follower = Attempt(Path(run_dir).resolve(), "", first=False)
        resume_from = checkpoint_to_resume(follower.run_dir, resume, ckpt_path)
        follower.resume_from = same_run(resume_from, run_identity)
        yield follower
        return
    current = attempt(run_dir)
    try:
        current.resume_from = same_run(checked_start(current, resume, ckpt_path), run_identity)
    except Exception:
        if not current.first:  # Hydra's copy of this refused attempt's config, and .hydra if empty
            shutil.rmtree(current.run_dir / current.hydra_subdir, ignore_errors=True)
            with contextlib.suppress(OSError):
                (current.run_dir / ".hydra").rmdir()
        release(current)
        raise
    try:
        yield current
    finally:
        release(current)


def checked_start(current: Attempt, resume: bool, ckpt_path: str | None) -> Path | None:
    """The checkpoint to resume from, after refusing whatever would mix two runs or write
    through a symlinked marker file."""
    run_dir = current.run_dir
    for marker in (LOCK_FILE, RUN_FILE, ATTEMPTS_FILE, METRICS_FILE):
        refuse_symlink(run_dir / marker)
    if current.lock is None:
        holder = (run_dir / LOCK_FILE).read_text().strip() or "unknown"
        raise RunDirectoryInUseError(
            f"{run_dir} is in use by another eilab-train run (pid {holder}): wait for it to "
            "end, or choose another hydra.run.dir"
        )
    inside = ckpt_path is not None and run_dir in Path(ckpt_path).resolve().parents
    if current.first and resume:
        raise NothingToResumeError(f"resume=true but {run_dir} holds no earlier run")
    if not current.first and not (resume or inside):
        raise RunDirectoryNotEmptyError(
            f"{run_dir} already holds a run ({', '.join(earlier_run(run_dir))}): resume it with "
            "resume=true (or ckpt_path=<one of its checkpoints>), or start the new run in "
            "another hydra.run.dir"
        )
    return checkpoint_to_resume(run_dir, resume, ckpt_path)


def checkpoint_to_resume(run_dir: Path, resume: bool, ckpt_path: str | None) -> Path | None:
    """``ckpt_path`` if given, else the run's recorded last checkpoint when resuming."""
    if ckpt_path is not None:
        return Path(ckpt_path)
    return recorded_checkpoint(run_dir, "last", hint="ckpt_path") if resume else None


def read_record(run_dir: Path) -> dict[str, Any]:
    """``run.json`` as a dict ({} when absent); an unreadable one is named."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path} is unreadable ({error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("checkpoints", {}), dict):
        raise RunDirError(f"{path} is not a JSON object with a checkpoints object")
    return record


def recorded_checkpoint(run_dir: Path, role: str, hint: str) -> Path:
    """The checkpoint ``run.json`` records for ``role`` ("last" or "best")."""
    recorded = read_record(run_dir).get("checkpoints", {})
    if role not in recorded:
        raise NothingToResumeError(
            f"{run_dir / RUN_FILE} records no {role} checkpoint (recorded: "
            f"{sorted(recorded) or 'none'}): name one with {hint}=<path to a .ckpt>"
        )
    path = recorded[role]
    if not (isinstance(path, str) and inside(run_dir / path, run_dir)):
        raise RunDirError(f"{run_dir / RUN_FILE} records {role} = {path!r}, not a file in the run")
    return run_dir / path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temporary file beside it, then os.replace)."""
    with atomic_file(path) as file:
        file.write(json.dumps(data, indent=2) + "\n")


def append_line(current: Attempt, entry: dict[str, Any]) -> None:
    """Append one JSON line to ``runs.jsonl`` (only the lock holder writes; never through a
    symlink)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with os.fdopen(open_nofollow(current.run_dir / ATTEMPTS_FILE, flags), "a") as file:
        file.write(json.dumps(entry, default=str) + "\n")


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def record_start(
    current: Attempt, cfg: DictConfig, overrides: list[str], hydra_dir: str | None
) -> None:
    """Mark the directory as holding a run and log this attempt's start and config changes."""
    if current.lock is None:
        return
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = [e["config"] for e in attempts(current.run_dir) if e["event"] == "start"]
    entry = {
        "event": "start",
        "attempt": current.name,
        "time": now(),
        "pid": os.getpid(),
        "overrides": overrides,
        "hydra_dir": hydra_dir,
        "resume_from": None if current.resume_from is None else str(current.resume_from),
        "log_version": current.log_version,
        "changed": changes(previous[-1], config) if previous else None,
        "config": config,
    }
    append_line(current, entry)
    if not (current.run_dir / RUN_FILE).exists():
        write_json(current.run_dir / RUN_FILE, {"created": now(), "checkpoints": {}})


def record_end(current: Attempt, metrics: dict[str, float]) -> None:
    """Log this attempt's test metrics (metrics.json keeps only the latest attempt's)."""
    if current.lock is not None:
        append_line(current, {"event": "end", "attempt": current.name, "time": now(), **metrics})


def record_checkpoints(current: Attempt, files: dict[str, str]) -> None:
    """Record the run's current checkpoint per role; files outside the run are not recorded."""
    if current.lock is None:
        return
    record = read_record(current.run_dir)
    for role, file in files.items():
        path = Path(file).resolve()
        if current.run_dir in path.parents:
            record.setdefault("checkpoints", {})[role] = str(path.relative_to(current.run_dir))
    write_json(current.run_dir / RUN_FILE, record)


def attempts(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``runs.jsonl``, oldest first."""
    path = run_dir / ATTEMPTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"a.b.c": leaf}; lists are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changes(old: Any, new: Any) -> dict[str, list[Any]]:
    """{"dotted.key": [old, new]} for every leaf that differs (None where absent)."""
    before, after = flatten(old), flatten(new)
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote its checkpoint."""

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    strategy = cfg.strategy
    return {
        "strategy": strategy._target_,
        "group": plain(strategy.group) if "group" in strategy else None,
        **{key: plain(cfg[key]) for key in ("physics", "img_size", "channels", "model", "dataset")},
        "fresh_noise": cfg.get("fresh_noise", False),
    }


def same_run(path: Path | None, run_identity: dict[str, Any]) -> Path | None:
    """``path``, the checkpoint to resume, after refusing one of another run (None passes)."""
    if path is not None:
        check_same_run(load_checkpoint(path), run_identity, path)
    return path


def check_same_run(checkpoint: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint stamped with another :func:`identity`.

    Checkpoints written before eilab stamped them carry no identity and are not checked.
    """
    saved = checkpoint.get(IDENTITY_KEY)
    if saved is None:
        return
    differences = changes(saved, current)
    if differences:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in differences.items())
        raise ResumeMismatchError(
            f"checkpoint {path} was trained with another setup, and resuming it would mix two "
            f"runs ({listed}). Resume with the same settings, or start a new run without "
            "ckpt_path/resume"
        )
