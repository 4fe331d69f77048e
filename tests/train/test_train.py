"""eilab-train end to end: every strategy, bad configs, resume after SIGKILL, DDP, Fig. 3
(the α sweep through the submitit launcher is in tests/test_report.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def eilab_train(*overrides: str, cwd: Path, extra_path: str = "") -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [extra_path, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path} if extra_path else None
    command = [sys.executable, "-m", "eilab.train", *overrides]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("strategy", ["mc", "ei", "ei_adv", "sup", "ei_sup"])
def test_debug_fast_runs_each_strategy_end_to_end(strategy, tmp_path):
    done = eilab_train("debug=fast", f"strategy={strategy}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "train").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test/psnr", "test/ssim", "test/psnr_adagger"} <= set(metrics)
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "logs" / "metrics.csv").exists()
    assert (run_dir / "images" / "epoch_0000.png").exists()
    assert strategy in run_dir.name


def test_channels_last_bf16_mixed_cpu_run_trains_and_keeps_the_physics_in_float32(tmp_path):
    done = eilab_train(
        "debug=fast", "channels_last=true", "trainer.precision=bf16-mixed", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "train").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(torch.isfinite(torch.tensor(value)) for value in metrics.values())
    adagger_fp32 = eilab_train("debug=fast", cwd=tmp_path / "outputs")
    assert adagger_fp32.returncode == 0, adagger_fp32.stderr[-2000:]
    (fp32_dir,) = (tmp_path / "outputs" / "outputs" / "train").iterdir()
    fp32 = json.loads((fp32_dir / "metrics.json").read_text())
    assert metrics["test/psnr_adagger"] == pytest.approx(fp32["test/psnr_adagger"], abs=1e-4)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("physics.n_view=3", "n_view"),
        ("strategy=eii", "eii"),
        ("physics.n_views=0", "n_views"),
        ("model.norm=layer", "norm"),
        ("physics.n_views=abc", "physics.n_views must be an integer, got 'abc'"),
        ("equivariance.alpha=-1", "equivariance.alpha"),
        ("img_size=100000", "GB"),
    ],
)
def test_bad_config_stops_before_training_and_names_the_key(override, named, tmp_path):
    done = eilab_train("debug=fast", override, cwd=tmp_path)
    assert done.returncode != 0
    assert named in done.stderr
    assert "Epoch" not in done.stdout + done.stderr


def test_a_failed_local_launcher_job_names_its_log_and_leaves_no_pattern_folder(tmp_path):
    failed = eilab_train(
        "-m",
        "hydra/launcher=local",
        "debug=fast",
        "equivariance.alpha=-1",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert failed.returncode != 0
    assert "equivariance.alpha must be a number >= 0" in failed.stderr
    log = Path(failed.stderr.split("its log: ")[1].split()[0])
    assert log.is_file() and "equivariance.alpha" in log.read_text()
    assert not (tmp_path / "s" / ".submitit" / "%j").exists()


def test_two_runs_never_share_an_output_directory(tmp_path):
    for _ in range(2):
        assert eilab_train("debug=fast", "strategy=mc", cwd=tmp_path).returncode == 0
    assert len(list((tmp_path / "outputs" / "train").iterdir())) == 2


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["state_dict"]


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    common = ["debug=fast", "strategy=ei", "trainer.max_epochs=4"]
    full = eilab_train(*common, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]

    killer = ["+callbacks.killer._target_=killer.KillAfterEpoch", "+callbacks.killer.epoch=1"]
    killed = eilab_train(
        *common,
        *killer,
        "hydra.run.dir=killed",
        cwd=tmp_path,
        extra_path=str(Path(__file__).parent),
    )
    assert killed.returncode == -9  # SIGKILL
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1

    resumed = eilab_train(*common, f"ckpt_path={last}", "hydra.run.dir=resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, actual = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    full_metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed_metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    # Allowed to differ: the wall time, and the best validation value, which Lightning tracks
    # per checkpoint directory (a run resumed into another directory starts its own record).
    for key in ("time/wall_s", "best_val/cycle"):
        assert full_metrics.pop(key) > 0 and resumed_metrics.pop(key) > 0
    assert full_metrics == resumed_metrics


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    poison = ["+callbacks.poison._target_=poison.PoisonWeights", "+callbacks.poison.epoch=1"]
    done = eilab_train(
        "debug=fast",
        "strategy=mc",
        "trainer.max_epochs=3",
        *poison,
        "hydra.run.dir=run",
        cwd=tmp_path,
        extra_path=str(Path(__file__).parent),
    )
    assert done.returncode != 0
    assert "train/loss is nan in epoch 1" in done.stderr
    assert "Last good checkpoint: " + str(tmp_path / "run" / "checkpoints" / "last.ckpt") in (
        done.stderr
    )
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )


def test_eval_reproduces_the_test_metrics_and_refuses_foreign_targets(tmp_path):
    assert (
        eilab_train("debug=fast", "strategy=ei", "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    )
    command = [sys.executable, "-m", "eilab.eval", "run_dir=run", "hydra.run.dir=eval"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()
    psnrs = [float(line.split(",")[1]) for line in rows[1:]]
    expected = json.loads((tmp_path / "run" / "metrics.json").read_text())["test/psnr"]
    assert len(psnrs) == 10 and abs(sum(psnrs) / len(psnrs) - expected) < 1e-3
    assert (tmp_path / "eval" / "recon_0009.png").exists()

    config = tmp_path / "run" / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("eilab.models.UNet", "os.system"))
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "os.system" in done.stderr and "not allowed" in done.stderr


def test_ddp_on_cpu_with_two_gloo_processes_matches_one_process(tmp_path):
    single = eilab_train("debug=fast", "hydra.run.dir=single", cwd=tmp_path)
    ddp = eilab_train(
        "debug=fast",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "hydra.run.dir=ddp",
        cwd=tmp_path,
    )
    assert single.returncode == 0 and ddp.returncode == 0, ddp.stderr[-2000:]
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").exists()  # a second rank really ran
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert abs(one["test/psnr"] - two["test/psnr"]) < 0.5
    assert one["test/psnr_adagger"] == pytest.approx(two["test/psnr_adagger"], abs=1e-4)


def test_ei_with_a_group_that_cannot_help_stops_before_training(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eilab.train",
            "debug=fast",
            "physics=mri",
            "group=shift",
            "channels=2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "EILAB_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode != 0
    assert "Corollary 1 holds" in done.stderr and "check_identifiability=false" in done.stderr
    assert "Epoch" not in done.stdout + done.stderr


def test_fig3_toy_ei_inpaints_the_triangles_and_mc_does_not(tmp_path):
    psnr = {}
    for strategy in ("mc", "ei"):
        done = eilab_train(
            "experiment=toy_fig3",
            f"strategy={strategy}",
            "trainer.max_epochs=40",
            f"hydra.run.dir={strategy}",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        psnr[strategy] = json.loads((tmp_path / strategy / "metrics.json").read_text())
    assert abs(psnr["mc"]["test/psnr"] - psnr["mc"]["test/psnr_adagger"]) < 1.0
    assert psnr["ei"]["test/psnr"] > psnr["mc"]["test/psnr"] + 8.0
