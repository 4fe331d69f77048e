"""hydra/launcher=packed end to end: the jobs of an α sweep train in turns in one process and
each computes and writes what it would alone; unpackable sweeps are refused before any work."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

JOB_DIRS = ("0_ei-ct-rotate", "1_ei-ct-rotate", "2_ei-ct-rotate")
#: Columns that hold wall-clock times, different in every run.
TIMES = ("time/wall_s", "train/epoch_time_s")


def sweep(*overrides: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    extra = {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        )
    }
    command = [sys.executable, "-m", "eilab.train", "-m", *overrides]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **extra, **(env or {})},
    )


def files(sweep_dir: Path) -> set[str]:
    """Every file a sweep wrote, relative to its folder (multirun.yaml aside)."""
    return {str(p.relative_to(sweep_dir)) for p in sweep_dir.rglob("*") if p.is_file()} - {
        "multirun.yaml"
    }


def metrics_table(job_dir: Path) -> list[dict[str, str]]:
    with (job_dir / "logs" / "metrics.csv").open() as table:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(table)]


def log_lines(job_dir: Path) -> list[str]:
    """The job's log file, without each line's time stamp."""
    return [line.split("]", 1)[-1] for line in (job_dir / "train.log").read_text().splitlines()]


def weights(job_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_a_packed_alpha_sweep_trains_in_turns_and_equals_the_separate_runs(tmp_path):
    common = ["debug=fast", "strategy=ei", "equivariance.alpha=1,10,100", "trainer.max_epochs=3"]
    trace = ["+callbacks.trace._target_=step_trace.TraceSteps", "+callbacks.trace.path=trace"]
    separate = sweep(*common, "hydra.sweep.dir=separate", cwd=tmp_path)
    assert separate.returncode == 0, separate.stderr[-2000:]
    packed = sweep(
        *common,
        *trace,
        "hydra/launcher=packed",
        "hydra.sweep.dir=packed",
        "trainer.enable_progress_bar=true",
        cwd=tmp_path,
    )
    assert packed.returncode == 0, packed.stderr[-2000:]

    # 3 epochs of 2 batches: six steps per job, one job's step after another's.
    assert (tmp_path / "trace").read_text().split() == list(JOB_DIRS) * 6
    assert files(tmp_path / "packed") == files(tmp_path / "separate")
    for job in JOB_DIRS:
        alone, together = tmp_path / "separate" / job, tmp_path / "packed" / job
        metrics = [json.loads((d / "metrics.json").read_text()) for d in (alone, together)]
        for values in metrics:
            values.pop("time/wall_s")
        assert metrics[0] == metrics[1]  # on the CPU bit for bit
        assert metrics_table(alone) == metrics_table(together)
        for name, tensor in weights(alone).items():
            assert torch.equal(tensor, weights(together)[name]), name
        assert log_lines(together) == log_lines(alone)  # each job's log holds its own lines


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["strategy=mc,ei"], "the jobs differ in strategy (mc, ei)"),
        (["img_size=16,24"], "the jobs differ in img_size"),
        (["trainer.devices=2"], "trainer.devices=2"),
    ],
)
def test_an_unpackable_sweep_is_refused_naming_the_key_before_any_work(overrides, named, tmp_path):
    refused = sweep(
        "debug=fast", *overrides, "hydra/launcher=packed", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert refused.returncode != 0
    assert named in refused.stderr
    assert not any(path.is_dir() for path in (tmp_path / "s").glob("*"))  # no job began


def test_a_failing_packed_job_fails_the_sweep_and_the_others_finish(tmp_path):
    done = sweep(
        "debug=fast",
        "equivariance.alpha=1,-1",
        "hydra/launcher=packed",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "equivariance.alpha must be a number >= 0" in done.stderr
    assert (tmp_path / "s" / "0_ei-ct-rotate" / "metrics.json").is_file()


@pytest.mark.parametrize("launcher", ["basic", "packed"])
def test_each_job_of_a_multirun_process_is_its_own_wandb_run(launcher, tmp_path):
    offline = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    offline |= {
        name: str(tmp_path / "home")
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
    }
    done = sweep(
        "debug=fast",
        "logger=[csv,wandb]",
        "equivariance.alpha=1,10",
        f"hydra/launcher={launcher}",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
        env=offline,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [list((tmp_path / "s" / job / "wandb").glob("offline-run-*")) for job in JOB_DIRS[:2]]
    assert [len(found) for found in runs] == [1, 1]
    assert runs[0][0].name != runs[1][0].name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_packed_fast_step_sweep_on_cuda_matches_the_separate_runs(tmp_path):
    """On CUDA each job replays its own CUDA graph on its own stream; the runs agree with the
    separate ones to cuDNN's and cuSPARSE's summation order (not bit for bit)."""
    common = [
        "debug=fast",
        "trainer=gpu",
        "trainer.enable_progress_bar=false",
        "fast_step=true",
        "strategy=ei",
        "equivariance.alpha=1,100",
        "trainer.max_epochs=3",
    ]
    for launcher in ("basic", "packed"):
        done = sweep(
            *common, f"hydra/launcher={launcher}", f"hydra.sweep.dir={launcher}", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-2000:]
    for job in JOB_DIRS[:2]:
        alone, together = (
            json.loads((tmp_path / launcher / job / "metrics.json").read_text())
            for launcher in ("basic", "packed")
        )
        assert together["test/psnr"] == pytest.approx(alone["test/psnr"], abs=0.05)
        assert together["test/loss"] == pytest.approx(alone["test/loss"], rel=1e-2)
