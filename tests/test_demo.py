"""The demo's machinery end to end, shrunk to seconds (debug=fast)."""

import csv
import subprocess
import sys


def test_demo_fast_writes_tables_csv_and_figures(tmp_path):
    command = [sys.executable, "-m", "eilab.demo", "--fast", "--out", "demo"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "demo").iterdir()
    for name in ("results.csv", "results.md", "ct.png", "inpainting.png"):
        assert (run_dir / name).exists(), name
    with open(run_dir / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    methods = {(row["task"], row["method"]) for row in rows}
    for task in ("ct", "inpainting"):
        assert {(task, m) for m in ("MC", "EI", "Sup")} <= methods
    assert "| MC |" in done.stdout and "| EI |" in done.stdout
