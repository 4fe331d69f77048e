"""`python -m eilab.reproduce` in its shrunk mode (--fast), and its gap-closure arithmetic."""

import csv

import pytest

from eilab import reproduce, reproduce_rei


def test_gap_closure_of_the_paper_table_matches_the_paper_text():
    for task, expected in (("ct", 82.8), ("inpainting", 93.4)):
        rows = [{"strategy": s, "test_psnr": v} for s, v in reproduce.PAPER_TABLE1[task].items()]
        assert reproduce.gap_closed(rows) == pytest.approx(expected, abs=0.05)


def test_share_of_the_fbp_to_sup_gap_uses_fbp():
    rows = [{"strategy": s, "test_psnr": v} for s, v in reproduce.PAPER_TABLE1["ct"].items()]
    assert reproduce.gap_closed(rows, "adagger") == pytest.approx(84.5, abs=0.05)


def test_gap_closure_needs_mc_ei_and_sup():
    assert reproduce.gap_closed([{"strategy": "ei", "test_psnr": 30.0}]) is None


def test_fast_reproduce_writes_tables_figures_and_publishes(tmp_path, capsys):
    published = tmp_path / "table1"
    out = reproduce.main(
        ["--fast", "--jobs", "1", "--out", str(tmp_path / "runs"), "--publish", str(published)]
    )
    for name in reproduce.PUBLISHED:
        assert (out / name).stat().st_size > 0, name
        assert (published / name).read_bytes() == (out / name).read_bytes(), name
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    methods = {task: [r["method"] for r in rows if r["task"] == task] for task in reproduce.TASKS}
    assert methods["ct"] == ["A†y (FBP)", "MC", "EI", "EI_adv", "Sup", "EI_sup"]
    assert methods["inpainting"] == ["A†y", "MC", "EI", "EI_adv", "Sup", "EI_sup"]
    assert methods["toy"] == ["A†y", "MC", "EI", "Sup"]
    steps = {r["method"]: r["steps"] for r in rows if r["task"] == "ct"}
    assert steps["EI_adv"] == steps["EI"] != ""  # batches, not both optimisers' updates
    for row in rows:
        gap = float(row["train_psnr"]) - float(row["test_psnr"])
        assert float(row["train_test_gap"]) == pytest.approx(gap), row["method"]
    paper = {r["method"]: r["paper_psnr"] for r in rows if r["task"] == "ct"}
    assert float(paper["EI"]) == 36.94 and paper["A†y (FBP)"] == "30.24"
    report = (out / "results.md").read_text()
    assert report.count("of the MC→Sup gap") == 3
    assert report.count("of the A†y→Sup gap") == 2 and "A†y (FBP)→Sup gap" in report
    assert "(paper: 82.8 %)" in report and "(paper: 93.4 %)" in report
    assert "(paper: 84.5 %)" in report
    assert report.count("- EI_sup only: strategy.alpha=0.1") == 2
    assert "precision bf16-mixed, channels_last" in report
    assert "Total wall time" in capsys.readouterr().out


def test_missing_training_log_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics\.csv"):
        reproduce.validation_log(tmp_path)


def test_rei_targets_are_checked_with_their_measured_values():
    rows = [
        {"strategy": s, "test_psnr": v}
        for s, v in (("ei", 20.0), ("rei", 23.0), ("rei_unknown", 22.2), ("sup", 25.0))
    ]
    assert reproduce_rei.target_lines(rows) == [
        "- REI − EI = +3.00 dB (target ≥ +2 dB): met",
        "- Sup − REI = +2.00 dB (target ≤ 1.5 dB): missed",
        "- REI unknown − REI = -0.80 dB (target within ±0.5 dB): missed",
    ]


def test_fast_rei_study_trains_every_strategy_on_the_same_noisy_tasks(tmp_path):
    out = reproduce_rei.main(
        ["--fast", "--jobs", "1", "--out", str(tmp_path), "--tasks", "ct", "ct64", "cs_0.2"]
    )
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    methods = [r["method"] for r in rows if r["task"] == "cs_0.2"]
    assert methods == ["A†y", "MC", "EI", "REI", "REI (unknown noise)", "Sup"]
    report = (out / "results.md").read_text()
    assert "TransmissionNoise" in report and "GaussianNoise(sigma=0.2)" in report
    assert report.count("REI − EI = ") == 3
    assert "64² × 60 views (noise limited)" in report and "48² × 8 views" in report
    assert (out / "ct.png").stat().st_size > 0 and (out / "ct64.png").stat().st_size > 0
