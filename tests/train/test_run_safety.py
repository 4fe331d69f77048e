"""A run directory belongs to one run: refusals, the lock, resuming, atomic checkpoints."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict, read_write

from eilab import rundir
from eilab.checkpoints import AtomicCheckpointIO
from eilab.confine import UnsafePathError
from eilab.train import make_trainer

FAST = ("debug=fast", "strategy=ei", "check_identifiability=false")
# One xdist worker runs this module, so its trained run (a module fixture) is trained once.
pytestmark = pytest.mark.xdist_group("run_safety")


def eilab_train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "eilab.train", *overrides]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file under run_dir (the lock file aside) and its bytes."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != rundir.LOCK_FILE
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished one-epoch EI run, copied by the tests that need an earlier run."""
    root = tmp_path_factory.mktemp("trained")
    done = eilab_train(*FAST, "trainer.max_epochs=1", "hydra.run.dir=run", cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "run"


def copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def test_training_into_an_earlier_run_is_refused_and_leaves_it_as_it_was(tmp_path):
    run = tmp_path / "run"  # as an earlier eilab wrote it: no run.json yet
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("earlier: config\n")
    (run / ".hydra" / "overrides.yaml").write_text("- earlier=override\n")
    (run / "logs").mkdir()
    (run / "logs" / "metrics.csv").write_text("epoch,val/psnr\n0,20.0\n")
    (run / "checkpoints").mkdir()
    (run / "train.log").write_text("earlier log\n")
    before = snapshot(run)
    done = eilab_train(*FAST, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode != 0
    assert "RunDirectoryNotEmptyError" in done.stderr and "resume=true" in done.stderr
    assert str(run) in done.stderr and "Epoch" not in done.stdout + done.stderr
    after = snapshot(run)
    assert after.pop("train.log").startswith(before.pop("train.log"))  # Hydra appends to it
    assert after == before  # no log deleted, no Hydra file overwritten or added


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("resume=true", "holds no earlier run"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
    ],
)
def test_nothing_to_resume_and_zero_epochs_are_refused_before_any_work(override, message, tmp_path):
    done = eilab_train(*FAST, override, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / rundir.RUN_FILE).exists()


def test_a_second_run_in_a_directory_in_use_is_refused_naming_it_and_the_holder(tmp_path):
    run = tmp_path / "run"
    lock = rundir.take_lock(run)  # this test process plays the run in progress
    try:
        done = eilab_train(*FAST, "hydra.run.dir=run", cwd=tmp_path)
    finally:
        lock.close()
    assert done.returncode != 0
    assert f"{run} is in use by another eilab-train run (pid {os.getpid()})" in done.stderr
    assert not (run / ".hydra").exists()  # Hydra's files of the refused run were not left behind
    assert not (run / "checkpoints").exists() and not (run / "logs").exists()


def test_resume_appends_logs_keeps_the_first_config_and_records_the_change(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    first = snapshot(run)
    done = eilab_train(
        *FAST, "trainer.max_epochs=2", "hydra.run.dir=run", "resume=true", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for kept in (".hydra/config.yaml", ".hydra/overrides.yaml", "logs/metrics.csv"):
        assert (run / kept).read_bytes() == first[kept], kept
    (attempt_hydra,) = (run / ".hydra").glob("attempt-*/overrides.yaml")
    assert "resume=true" in attempt_hydra.read_text()
    (new_log,) = (run / "logs").glob("attempt-*/metrics.csv")
    assert new_log.parent.name == attempt_hydra.parent.name
    with open(new_log) as handle:
        epochs = {row["epoch"] for row in csv.DictReader(handle)}
    assert "1" in epochs and "0" not in epochs  # the resumed epoch, not a rerun of epoch 0
    starts = [e for e in rundir.attempts(run) if e["event"] == "start"]
    assert len(starts) == 2
    changed = starts[1]["changed"]  # and the paths that moved with the copied directory
    assert changed["trainer.max_epochs"] == [1, 2] and changed["resume"] == [False, True]
    assert starts[1]["resume_from"] == str(run / "checkpoints" / "last.ckpt")
    last = run / json.loads((run / rundir.RUN_FILE).read_text())["checkpoints"]["last"]
    assert torch.load(last, weights_only=True)["epoch"] == 1


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("strategy=mc", "strategy: 'eilab.strategies.EI' -> 'eilab.strategies.MC'"),
        ("img_size=12", "img_size: 16 -> 12"),
        ("physics.n_views=20", "physics.n_views: 50 -> 20"),
        ("fresh_noise=true", "fresh_noise: False -> True"),
    ],
)
def test_resuming_with_another_strategy_size_or_physics_is_refused(
    trained, override, named, tmp_path
):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    ckpt = run / "checkpoints" / "last.ckpt"
    done = eilab_train(*FAST, override, f"ckpt_path={ckpt}", "hydra.run.dir=new", cwd=tmp_path)
    assert done.returncode != 0
    assert "ResumeMismatchError" in done.stderr and named in done.stderr
    assert "Epoch" not in done.stdout + done.stderr
    assert snapshot(run) == before


def test_a_resume_refused_for_another_setup_leaves_the_run_as_it_was(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    done = eilab_train(*FAST, "img_size=12", "hydra.run.dir=run", "resume=true", cwd=tmp_path)
    assert done.returncode != 0 and "ResumeMismatchError" in done.stderr
    after = snapshot(run)
    assert after.pop("train.log").startswith(before.pop("train.log"))  # Hydra appends to it
    assert after == before  # no .hydra/attempt-*/ left behind


def test_resuming_a_truncated_checkpoint_names_it(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    done = eilab_train(*FAST, f"ckpt_path={ckpt}", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode != 0
    assert f"checkpoint {ckpt} is truncated or corrupt" in done.stderr


def test_a_failed_checkpoint_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 0}, path)

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 1}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 0
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_removing_a_checkpoint_never_deletes_a_folder_or_a_symlink_target(tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    link = tmp_path / "checkpoints" / "best-epoch=0.ckpt"
    link.parent.mkdir()
    link.symlink_to(folder)
    io = AtomicCheckpointIO()
    with pytest.raises(UnsafePathError, match=f"refusing to delete {folder}: a directory"):
        io.remove_checkpoint(folder)
    io.remove_checkpoint(link)
    assert not link.is_symlink() and (folder / "keep.txt").read_text() == "mine\n"


def test_the_trainer_saves_checkpoints_atomically_and_records_them(tmp_path):
    with initialize_config_module("eilab.conf", version_base="1.3"):
        cfg = compose("train", overrides=list(FAST), return_hydra_config=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    attempt = rundir.attempt(tmp_path)
    try:
        trainer = make_trainer(cfg, tmp_path, attempt)
        assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
        (tmp_path / "checkpoints").mkdir()
        trainer.checkpoint_callbacks[0].best_model_path = str(tmp_path / "checkpoints" / "a.ckpt")
        trainer.strategy.checkpoint_io.save_checkpoint(
            {"epoch": 0}, tmp_path / "checkpoints/a.ckpt"
        )
    finally:
        rundir.release(attempt)
    recorded = json.loads((tmp_path / rundir.RUN_FILE).read_text())["checkpoints"]
    assert recorded == {"last": "checkpoints/a.ckpt"}


def craft_callback_states(ckpt: Path, outside: str, monitored: bool) -> None:
    """Point the (un)monitored ModelCheckpoint state of ``ckpt`` at ``outside``, as it would
    be in a checkpoint written in this run directory, and save it without pickled objects."""
    checkpoint = torch.load(ckpt, weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if not key.startswith("ModelCheckpoint") or ("'monitor': None" in key) == monitored:
            continue
        state.update(dirpath=str(ckpt.parent), best_model_path=outside)
        if monitored:  # the worst score: the next validation replaces it, deleting its file
            worst = torch.tensor(float("inf") if "'mode': 'min'" in key else float("-inf"))
            state.update(kth_best_model_path=outside, best_k_models={outside: worst})
            state.update(best_model_score=worst, kth_value=worst)
    torch.save(checkpoint, ckpt)


@pytest.mark.parametrize("monitored", [False, True], ids=["last", "best"])
def test_a_crafted_checkpoint_cannot_make_resume_delete_a_folder_outside_the_run(
    trained, monitored, tmp_path
):
    run = copy_run(trained, tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine\n")
    outside = str(run / "checkpoints" / ".." / ".." / "precious")
    craft_callback_states(run / "checkpoints" / "last.ckpt", outside, monitored)
    done = eilab_train(
        *FAST, "trainer.max_epochs=2", "hydra.run.dir=run", "resume=true", cwd=tmp_path
    )
    assert (precious / "keep.txt").read_text() == "mine\n"
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"ignoring checkpoint callback state outside {run / 'checkpoints'}" in done.stdout
    assert f"best_model_path={outside!r}" in done.stdout


@pytest.mark.parametrize(
    "marker", [rundir.LOCK_FILE, rundir.RUN_FILE, "runs.jsonl", "metrics.json"]
)
def test_a_symlinked_marker_file_is_refused_and_its_target_untouched(trained, marker, tmp_path):
    run = copy_run(trained, tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    (run / marker).unlink()
    (run / marker).symlink_to(target)
    done = eilab_train(
        *FAST, "trainer.max_epochs=2", "hydra.run.dir=run", "resume=true", cwd=tmp_path
    )
    assert done.returncode != 0
    assert f"UnsafePathError: {run / marker} is a symlink (to {target})" in done.stderr
    assert target.read_text() == "mine\n"
    assert "Epoch" not in done.stdout + done.stderr
    assert not list((run / ".hydra").glob("attempt-*"))  # the refused attempt's config removed


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("[]", "is not a JSON object with a checkpoints object"),
        ('{"checkpoints": ["last.ckpt"]}', "is not a JSON object with a checkpoints object"),
        ('{"checkpoints": {"last": "../elsewhere.ckpt"}}', "records last = '../elsewhere.ckpt'"),
        ('{"checkpoints": {"last": 3}}', "records last = 3, not a file in the run"),
    ],
)
def test_a_run_json_of_another_shape_is_named(record, message, tmp_path):
    (tmp_path / rundir.RUN_FILE).write_text(record)
    named = re.escape(f"{tmp_path / rundir.RUN_FILE} ") + ".*" + re.escape(message)
    with pytest.raises(rundir.RunDirError, match=named):
        rundir.recorded_checkpoint(tmp_path, "last", hint="ckpt_path")
