"""eilab-report over real run directories; the rank agreement and progress helpers."""

import json
import subprocess
import sys

import pytest

from eilab.progress import progress_text, read_progress
from eilab.report import main, rank_agreement


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
    main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "runs.md").read_text()
    assert "3 finished runs" in text and "Sweep over" not in text
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
