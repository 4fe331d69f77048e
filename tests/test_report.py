"""eilab-report over real run directories; the rank agreement and progress helpers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from eilab.eval import UnsafeRunConfigError, load_config
from eilab.progress import progress_text, read_progress
from eilab.report import criterion_of, main, rank_agreement, read_run


def rows(criteria, psnrs):
    return [
        {"criterion": "val/sure", "criterion_value": c, "test_psnr": p, "alpha": a}
        for a, (c, p) in enumerate(zip(criteria, psnrs, strict=True))
    ]


def test_rank_agreement_is_one_when_the_criterion_orders_runs_like_psnr():
    agreement = rank_agreement(rows([3.0, 2.0, 1.0, 0.5], [20.0, 21.0, 25.0, 26.0]))
    assert agreement["rho"] == pytest.approx(1.0)
    assert agreement["selected"]["alpha"] == 3 and agreement["best"]["alpha"] == 3


def test_rank_agreement_is_minus_one_and_names_both_runs_when_reversed():
    agreement = rank_agreement(rows([0.5, 1.0, 2.0, 3.0], [20.0, 21.0, 25.0, 26.0]))
    assert agreement["rho"] == pytest.approx(-1.0)
    assert agreement["selected"]["alpha"] == 0 and agreement["best"]["alpha"] == 3


def test_rank_agreement_needs_three_scored_runs():
    assert rank_agreement(rows([1.0, 2.0], [20.0, 21.0])) is None


def test_progress_text_gives_epoch_and_eta(tmp_path):
    assert progress_text(read_progress(tmp_path)) == "starting"
    state = {"epoch": 12, "first_epoch": 2, "max_epochs": 100, "elapsed_s": 60.0}
    (tmp_path / "progress.json").write_text(json.dumps(state))
    assert progress_text(read_progress(tmp_path)) == "epoch 12/100, ETA 9 min"


def test_alpha_sweep_through_the_submitit_local_launcher_and_its_report(tmp_path, capsys):
    sweep = [sys.executable, "-m", "eilab.train", "-m", "hydra/launcher=local", "debug=fast"]
    sweep += ["strategy=ei", "equivariance.alpha=1,10,100", "hydra.sweep.dir=sweep"]
    done = subprocess.run(sweep, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "sweep").glob("*/metrics.json"))) == 3
    assert not (tmp_path / "sweep" / ".submitit" / "%j").exists()  # submitit's empty pattern
    main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "runs.md").read_text()
    assert "3 finished runs" in text and "Sweep over" not in text
    for alpha in (1, 10, 100):
        assert f"| ei/ct/rotate equivariance.alpha={alpha} |" in text
    assert "wrote runs.md" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--sweep alpha: no such config value"):
        main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report"), "--sweep", "alpha"])
    command = [sys.executable, "-m", "eilab.report", "sweep", "--out", "sw"]
    command += ["--sweep", "equivariance.alpha"]
    reported = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert reported.returncode == 0, reported.stderr
    table = (tmp_path / "sw" / "runs.md").read_text()
    for text in (reported.stdout, table):
        assert "| ei/ct/rotate | 1 |" in text and "| ei/ct/rotate | 100 |" in text
    assert "Spearman ρ(−val/sure, test PSNR)" in table
    csv_lines = (tmp_path / "sw" / "runs.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and "test_psnr" in csv_lines[0]
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 1000
    assert (tmp_path / "sw" / "curves.png").stat().st_size > 1000


def test_report_names_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main([str(tmp_path / "nowhere")])


def fake_run(
    run_dir: Path, choices: dict | None = None, overrides: list[str] | None = None, **config
) -> Path:
    """A finished run directory as eilab-train leaves it, without weights (no checkpoint)."""
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides or []), run_dir / ".hydra" / "overrides.yaml")
    (run_dir / "logs").mkdir()
    config = {"strategy": {"_target_": "eilab.strategies.EI"}, **config}
    OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
    choices = {"strategy": "ei", "physics": "ct", "group": "rotate", **(choices or {})}
    hydra = {"hydra": {"runtime": {"choices": choices}}}
    OmegaConf.save(OmegaConf.create(hydra), run_dir / ".hydra" / "hydra.yaml")
    metrics = {"test/psnr": 25.0, "test/ssim": 0.8, "time/wall_s": 3.0}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "logs" / "metrics.csv").write_text("epoch,val/psnr,val/sure\n0,24.0,0.5\n")
    return run_dir


def test_report_never_resolves_the_environment_from_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EILAB_TEST_SECRET", "hunter2")
    secret = "${oc.env:EILAB_TEST_SECRET}"
    fake_run(tmp_path / "runs" / "a", {"strategy": secret}, label=secret, size="${oc.select:n,3}")
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--sweep", "label"])
    written = [(tmp_path / "report" / name).read_text() for name in ("runs.md", "runs.csv")]
    for text in (*written, capsys.readouterr().out):
        assert "hunter2" not in text and secret in text
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--sweep", "size"])
    assert "| ${oc.env:EILAB_TEST_SECRET}/ct/rotate | 3 |" in capsys.readouterr().out


def billion_laughs(levels: int = 9) -> str:
    """A YAML file whose aliases expand to 10**levels strings."""
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (billion_laughs(), "expands to more than"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nests deeper than"),
    ],
    ids=["billion_laughs", "5000_deep"],
)
def test_a_yaml_bomb_is_refused_by_eval_and_skipped_by_report(text, reason, tmp_path, capsys):
    good, bomb = fake_run(tmp_path / "runs" / "good"), fake_run(tmp_path / "runs" / "bomb")
    (bomb / ".hydra" / "config.yaml").write_text(text)
    with pytest.raises(UnsafeRunConfigError, match=f"{bomb / '.hydra' / 'config.yaml'} {reason}"):
        load_config(bomb)
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert f"skipped {bomb}: {bomb / '.hydra' / 'config.yaml'} {reason}" in err
    assert "1 finished runs" in (tmp_path / "report" / "runs.md").read_text()
    assert str(good) in (tmp_path / "report" / "runs.csv").read_text()


def truncated_checkpoint(run_dir: Path) -> None:
    (run_dir / "checkpoints").mkdir()
    path = run_dir / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "epoch": 0, "global_step": 2}, path)
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        (truncated_checkpoint, "checkpoints/last.ckpt"),
        (lambda run: (run / "metrics.json").write_text("[]"), "metrics.json"),
        (
            lambda run: (run / "logs" / "metrics.csv").write_text("epoch\nfirst\n"),
            "logs/metrics.csv",
        ),
        (
            lambda run: (run / ".hydra" / "hydra.yaml").write_text("hydra: {}\n"),
            ".hydra/hydra.yaml",
        ),
        (
            lambda run: (run / ".hydra" / "config.yaml").write_text("- a list\n"),
            ".hydra/config.yaml",
        ),
    ],
    ids=["truncated_ckpt", "metrics_list", "csv_text", "hydra_empty", "config_list"],
)
def test_one_bad_run_is_skipped_with_one_line_naming_its_file(damage, file, tmp_path, capsys):
    fake_run(tmp_path / "runs" / "good")
    bad = fake_run(tmp_path / "runs" / "bad")
    damage(bad)
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {bad}: ")
    assert str(bad / file) in lines[0]
    table = (tmp_path / "report" / "runs.md").read_text()
    assert "1 finished runs" in table and f"skipped {bad}" in table


def test_a_sweep_over_a_list_or_a_name_is_reported_as_text(tmp_path, capsys):
    for name, widths, norm in (("a", [8], "batch"), ("b", [8, 16], "none")):
        fake_run(tmp_path / "runs" / name, model={"widths": widths, "norm": norm})
    for key, shown in (("model.widths", "[8, 16]"), ("model.norm", "none")):
        main([str(tmp_path / "runs"), "--out", str(tmp_path / key), "--sweep", key])
        assert f"| ei/ct/rotate | {shown} | 25.00 |" in capsys.readouterr().out
        assert (tmp_path / key / "sweep.png").is_file()


def test_runs_are_named_by_the_overrides_that_differ_between_them(tmp_path, capsys):
    common = ["debug=fast", "strategy=ei"]
    for name, alpha, seed in (("a", 1, 0), ("b", 10, 0), ("c", 10, 1)):
        overrides = [*common, f"equivariance.alpha={alpha}", f"+seed={seed}"]
        fake_run(tmp_path / "runs" / name, overrides=overrides, equivariance={"alpha": alpha})
    overrides = [*common, "equivariance.alpha=100"]
    fake_run(tmp_path / "runs" / "d", overrides=overrides, equivariance={"alpha": 100})
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    table = capsys.readouterr().out
    for label in ("alpha=1 seed=0", "alpha=10 seed=0", "alpha=10 seed=1", "alpha=100 seed=–"):
        alpha, seed = label.split()
        assert f"| ei/ct/rotate equivariance.{alpha} {seed} | 25.00 |" in table
    main([str(tmp_path / "runs" / "a"), "--out", str(tmp_path / "one")])
    assert "| ei/ct/rotate | 25.00 |" in capsys.readouterr().out
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "sw"), "--sweep", "equivariance.alpha"])
    assert "| ei/ct/rotate seed=1 | 10 |" in capsys.readouterr().out


def test_a_sweep_is_ranked_by_every_ground_truth_free_criterion_logged(tmp_path, capsys):
    """val/sure prefers the smallest α here, val/sure_equiv the best one: both are reported,
    each with the α it selects and the dB it loses."""
    for alpha, psnr, sure, combined in (
        (1, 24.0, 0.1, 0.3),
        (10, 27.0, 0.2, 0.1),
        (100, 25.0, 0.3, 0.2),
    ):
        run = fake_run(
            tmp_path / "runs" / str(alpha),
            overrides=[f"equivariance.alpha={alpha}"],
            equivariance={"alpha": alpha},
        )
        (run / "metrics.json").write_text(json.dumps({"test/psnr": psnr}))
        log = f"epoch,val/psnr,val/sure,val/sure_equiv\n0,{psnr},{sure},{combined}\n"
        (run / "logs" / "metrics.csv").write_text(log)
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "sw"), "--sweep", "equivariance.alpha"])
    text = capsys.readouterr().out
    assert "Spearman ρ(−val/sure, test PSNR) = -0.50 over 3 values" in text
    assert "selects equivariance.alpha = 1 (24.00 dB)" in text and "3.00 dB lost" in text
    assert "Spearman ρ(−val/sure_equiv, test PSNR) = 1.00 over 3 values" in text
    assert "selects equivariance.alpha = 10 (27.00 dB)" in text and "0.00 dB lost" in text
    assert "val/equiv" not in text  # not logged: not reported


def test_the_criterion_column_is_the_runs_own_selection_metric(tmp_path):
    """An EI run selects on val/cycle, an MC run on val/sure: each row shows its own; a run
    selecting on val/psnr (ground truth) shows the first ground-truth-free one it logged."""
    log = "epoch,val/psnr,val/sure,val/cycle\n0,24.0,0.5,0.7\n"
    for name, metric in (("ei", "val/cycle"), ("mc", "val/sure"), ("sup", "val/psnr")):
        run_dir = fake_run(tmp_path / name, strategy={"selection_metric": metric})
        (run_dir / "logs" / "metrics.csv").write_text(log)
    shown = {run.run_dir.name: criterion_of(run, None) for run in map(read_run, tmp_path.iterdir())}
    assert shown == {"ei": "val/cycle", "mc": "val/sure", "sup": "val/sure"}
    assert criterion_of(read_run(tmp_path / "ei"), "val/equiv") == "val/equiv"
