"""`python -m eilab.demo` in its shrunk mode (--fast) writes its tables, CSV and figures."""

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eilab import demo, runs

METHODS = {"ct": ["A†y (FBP)", "MC", "EI", "Sup"], "inpainting": ["A†y", "MC", "EI", "Sup"]}


def test_fast_demo_writes_tables_csv_and_figures(tmp_path, capsys):
    out = demo.main(["--fast", "--jobs", "1", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert out.parent == tmp_path
    for name in ("results.csv", "results.md", "ct.png", "inpainting.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["method"]) for r in rows] == [
        (task, method) for task, methods in METHODS.items() for method in methods
    ]
    assert all(float(r["test_psnr"]) > 0 for r in rows)
    assert {r["epochs"] for r in rows if r["epochs"]} == {"2"}  # debug=fast for every run
    for task in METHODS:
        for strategy in demo.STRATEGIES:
            run_dir = out / task / strategy
            for name in ("metrics.json", ".hydra/config.yaml", "checkpoints/last.ckpt"):
                assert (run_dir / name).is_file(), run_dir / name
    assert "| method | test PSNR (dB) | test SSIM | train time (s) | epochs | steps |" in printed
    assert printed.count("| EI |") == 2
    assert "Total wall time" in (out / "results.md").read_text()


def test_output_directories_are_never_reused(tmp_path):
    first, second = runs.new_output_dir(tmp_path), runs.new_output_dir(tmp_path)
    assert first != second
    assert first.is_dir() and second.is_dir()


def test_missing_head_ct_falls_back_to_ellipses(monkeypatch, capsys):
    def missing(path=None):
        raise FileNotFoundError("head CT file not found")

    monkeypatch.setattr(runs, "find_head_ct", missing)
    assert runs.ct_dataset_overrides() == ["dataset=ellipses"]
    assert "falls back to dataset=ellipses" in capsys.readouterr().out


ORPHAN_CHECK = """
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
from eilab.runs import init_worker
if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=init_worker) as pool:
        print(pool.submit(__import__("os").getpid).result(), flush=True)
        time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_workers_die_when_the_command_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(ORPHAN_CHECK)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while Path(f"/proc/{worker}").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists() or "Z" in zombie_state(worker)


def zombie_state(pid: int) -> str:
    """The state letter in /proc/<pid>/stat ("Z": a zombie, already dead)."""
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
