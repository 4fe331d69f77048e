"""The scaling suite reports time and peak memory per backend, and keeps cells within limits."""

import re

import pytest
import torch

from eilab.bench.memory import CellResult, CellSpec, run_cell
from eilab.bench.scaling import BACKENDS, QUICK, Refused, main, refusal, skip_reason
from eilab.bench.timing import MissingPeerError, require
from eilab.physics import astra_radon, radon


def importable(module: str) -> bool:
    try:
        require(module)
    except MissingPeerError:
        return False
    return True


#: The backends that must have numbers here: deepinv and astra are optional.
MEASURED = ["torch"] + ["astra"] * astra_radon.is_available() + ["deepinv"] * importable("deepinv")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def table_rows(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first markdown table after ``heading``."""
    after = text.split(heading, 1)[1]
    block = next(b for b in after.split("\n\n") if b.startswith("|"))
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()]
    return cells[0], cells[2:]


def number(cell: str) -> float:
    assert re.fullmatch(r"[0-9]+\.[0-9]+", cell), cell
    return float(cell)


def result(**ops_ms) -> CellResult:
    return CellResult(ops_ms, build_s=1.0, first_s=1.0, calls="2", peak_gb=0.5, base_gb=0.3)


def test_quick_run_reports_time_and_peak_memory_of_every_backend(tmp_path, restore_threads):
    text = main(["--quick", "--devices", "cpu", "--out-dir", str(tmp_path)])
    assert (tmp_path / "scaling_cpu.md").read_text() in text
    assert (tmp_path / "scaling_cpu.png").stat().st_size > 0
    header, rows = table_rows(text, "- plot:")
    columns = [f"{backend} {unit}" for backend in BACKENDS for unit in ("ms", "GB")]
    assert header == ["N", "views", *columns, "torch build s"]
    assert [row[:2] for row in rows] == [[str(n), "4"] for n in QUICK.sizes]
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        for backend in BACKENDS:  # the optional ones are measured where they import
            if backend in MEASURED:
                assert number(cells[f"{backend} ms"]) > 0
                assert 0.05 < number(cells[f"{backend} GB"]) < 4
            else:
                assert cells[f"{backend} ms"].startswith("missing (")
    header, rows = table_rows(text, "### CPU target: 32² × 8 views, batch 2, peak ≤ 1 GB")
    assert [row[0] for row in rows] == list(BACKENDS)
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        if cells["backend"] not in MEASURED:
            continue
        split = sum(number(cells[op]) for op in ("forward ms", "adjoint ms", "FBP ms"))
        assert split == pytest.approx(number(cells["total ms"]), abs=0.2)
        assert cells["target met"] == ("yes" if number(cells["peak GB"]) <= 1 else "no")


def test_child_cap_stops_an_allocation_over_it():
    # Building 128² × 50 views' matrices takes about 0.4 GB (refusal() is the parent's check).
    cell = run_cell(CellSpec("torch", 128, 50, 1, cap_gb=0.01), timeout_s=120)
    assert isinstance(cell, str) and cell.startswith("out of memory (cap 0.01 GB,"), cell


def test_builtin_cell_over_the_cap_is_refused_with_ct_estimate():
    need = radon.estimate_memory(512, 720, circle=False)
    assert refusal(512, 720, cap_gb=need.peak / 1e9 + 0.1) is None
    refused = refusal(512, 720, cap_gb=4.0)
    assert refused == Refused(need.rest / 1e9, need.peak / 1e9)
    assert str(refused) == f"est. {need.peak / 1e9:.1f} ({need.rest / 1e9:.1f} at rest)"


def test_skip_predicts_cost_from_the_largest_measured_cell_inside():
    done = {("torch", 128, 50): result(forward=1.0), ("torch", 128, 90): result(forward=1.0)}
    # 2 s at 128x90 scale to 2 × (256² × 90) / (128² × 90) = 8 s at 256x90.
    assert skip_reason("torch", 256, 90, done, budget_s=9) is None
    reason = skip_reason("torch", 256, 90, done, budget_s=7)
    assert reason == "skipped (about 8 s from 128x90 > 7 s)"
    assert skip_reason("astra", 256, 90, done, budget_s=7) is None  # other backends: own cells


def test_skip_follows_memory_stops_and_missing_peers():
    done = {("deepinv", 256, 90): "out of memory (cap 6 GB; RuntimeError: ...)"}
    assert skip_reason("deepinv", 512, 90, done, 90) == "skipped (after 256x90: out of memory)"
    assert skip_reason("deepinv", 512, 50, done, 90) is None  # does not contain 256x90
    done = {("deepinv", 128, 50): "missing (No module named 'deepinv')"}
    assert skip_reason("deepinv", 128, 90, done, 90) == "missing (No module named 'deepinv')"
