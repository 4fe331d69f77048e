"""The scaling suite reports time and peak memory per backend, and keeps cells within limits."""

import argparse
import re
import time
from dataclasses import replace

import pytest
import torch

from eilab.bench.gpu_monitor import Sampled, cuda_index
from eilab.bench.memory import CellResult, CellSpec, limit_memory, run_cell
from eilab.bench.scaling import (
    BACKENDS,
    QUICK,
    Refused,
    counted_peak,
    device_name,
    main,
    refusal,
    skip_reason,
    time_and_memory,
)
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


def test_cuda_without_an_index_means_the_current_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert cuda_index(torch.device("cuda")) == 3
    assert cuda_index("cuda:1") == 1
    with pytest.raises(ValueError, match="not a CUDA device: cpu"):
        cuda_index("cpu")


@pytest.mark.parametrize(("device", "index"), [("cuda", 2), ("cuda:1", 1)])
def test_the_gpu_cap_is_set_on_an_indexed_device(monkeypatch, device, index):
    """torch.cuda.set_per_process_memory_fraction refuses torch.device('cuda') without an
    index: the cell must hand it (and the other per-device calls) an index."""
    calls = []
    props = type("Props", (), {"total_memory": 10e9})
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: calls.append(i) or props)
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append((f, i))
    )
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i: calls.append(i))
    limit_memory(CellSpec("astra", 32, 4, 1, device=device, cap_gb=4.0), torch.device(device))
    assert calls == [index, (0.4, index), index]


def test_sampled_readings_give_the_peak_above_the_start_and_the_mean():
    readings = iter([1000, 1500, 4000, 2000] + [1200] * 100_000)
    with Sampled(lambda: next(readings), interval_s=0.0) as memory:
        while len(memory.values) < 6:
            time.sleep(0.001)
    assert memory.values[:4] == [1000, 1500, 4000, 2000]
    assert memory.peak_above_start == 3000
    assert memory.mean == pytest.approx(sum(memory.values) / len(memory.values))


def test_gpu_cells_show_torch_and_device_peaks():
    cell = CellResult({"forward": 1.0}, 2.0, 1.0, "adaptive", 0.8, 0.3, 0.25, 0.5)
    assert time_and_memory(cell, gpu=True) == ["1.0", "0.80", "0.25", "0.50"]
    assert time_and_memory(replace(cell, gpu_device_gb=None), gpu=True)[-1] == "-"
    assert time_and_memory(cell) == ["1.0", "0.80"]
    assert counted_peak(cell) == 0.5 and counted_peak(replace(cell, gpu_device_gb=None)) == 0.25
    assert time_and_memory("missing (x)", gpu=True) == ["missing (x)", "-", "-", "-"]


def test_devices_option_takes_an_index():
    assert device_name("cuda:1") == "cuda:1"
    with pytest.raises(argparse.ArgumentTypeError, match="cpu, cuda or cuda:N"):
        device_name("gpu")
