"""`python -m eilab.bench --suite scaling` at tiny settings writes its tables and its plot."""

import re

import pytest
import torch

from eilab.bench.__main__ import main

TIMING = ["--min-time", "0", "--max-time", "0.01", "--warmup", "0", "--threads", "1"]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The cells of the markdown table under ``heading``, keyed by their first cell."""
    section = text.split(heading, 1)[1].split("\n\n")[1]
    rows = [line.strip("|").split("|") for line in section.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def median_and_iqr(cell: str) -> tuple[float, float]:
    """'1.23 (0.04)' -> (1.23, 0.04)."""
    match = re.fullmatch(r"([0-9.]+) \(([0-9.]+)\)", cell)
    assert match, cell
    return float(match[1]), float(match[2])


def test_scaling_suite_writes_tables_and_plot(tmp_path, capsys, restore_threads):
    out = tmp_path / "bench.md"
    args = ["--suite", "scaling", "--scaling-sizes", "16", "32", "--scaling-views", "4", "8"]
    main([*args, "--scaling-batch", "1", *TIMING, "--out", str(out)])
    text = out.read_text()
    assert text in capsys.readouterr().out
    by_size = table_rows(text, "### vs image size (50 views, batch 1)")
    by_views = table_rows(text, "### vs number of views (128x128, batch 1)")
    assert list(by_size) == ["16", "32"]
    assert list(by_views) == ["4", "8"]
    for eilab, deepinv, ratio, build_s in [*by_size.values(), *by_views.values()]:
        assert median_and_iqr(eilab)[0] > 0 and float(build_s) > 0
        # deepinv is timed where it imports, else its cell says why (the main venv lacks it).
        if deepinv.startswith("missing ("):
            assert ratio == "-"
        else:
            assert median_and_iqr(deepinv)[0] > 0 and re.fullmatch(r"[0-9.]+x", ratio)
    plot = tmp_path / "bench_scaling.png"
    assert plot.stat().st_size > 0
    assert f"- plot: {plot}" in text
