"""`python -m eilab.reproduce_gpu` in its shrunk mode: records accumulate, partial runs stay out."""

import csv
import json

from eilab import reproduce_gpu


def run(tmp_path, *argv: str) -> str:
    out, publish = tmp_path / "runs", tmp_path / "table1_gpu"
    return reproduce_gpu.main(["--fast", "--out", str(out), "--publish", str(publish), *argv])


def records(tmp_path) -> dict[str, dict]:
    paths = (tmp_path / "table1_gpu" / "runs").glob("*.json")
    return {path.stem: json.loads(path.read_text()) for path in paths}


def test_the_table_fills_up_one_call_at_a_time_and_leaves_partial_runs_out(tmp_path):
    run(tmp_path, "--strategies", "mc", "sup", "--epochs", "2")
    report = run(tmp_path, "--strategies", "ei", "ei_adv", "--epochs", "2")
    kept = records(tmp_path)
    assert sorted(kept) == ["ei", "ei_adv", "mc", "sup"]
    # two epochs of two batches; EI_adv's two optimisers count one step per batch
    assert all(r["complete"] and r["epochs"] == 2 and r["steps"] == 4 for r in kept.values())
    assert kept["ei"]["machine"].startswith("CPU ") and kept["ei"]["curve"]["epoch"] == [1, 2]
    with open(tmp_path / "table1_gpu" / "results.csv", newline="") as handle:
        methods = [row["method"] for row in csv.DictReader(handle)]
    assert methods == ["A†y (FBP)", "MC", "EI", "EI_adv", "Sup"]
    assert "of the MC→Sup gap (paper: 82.8 %)" in report and "- no partial runs" in report
    assert (tmp_path / "table1_gpu" / "curves.png").stat().st_size > 0

    # A time limit stops EI and EI_sup after some batches: EI's complete record stays,
    # EI_sup is listed as partial and kept out of the table.
    limit = ["--epochs", "50", "--max-minutes", "0.01"]
    report = run(tmp_path, "--strategies", "ei", "ei_sup", *limit)
    kept = records(tmp_path)
    assert kept["ei"]["complete"] and kept["ei"]["epochs"] == 2
    assert not kept["ei_sup"]["complete"] and kept["ei_sup"]["epochs"] < 50
    assert "- EI_sup: partial, " in report and "of 50 epochs" in report
    assert "| EI_sup |" not in report


def test_max_time_is_lightnings_duration_text():
    assert reproduce_gpu.max_time(0.5) == "00:00:00:30"
    assert reproduce_gpu.max_time(1501) == "01:01:01:00"
    assert reproduce_gpu.max_time(0.001) == "00:00:00:01"
