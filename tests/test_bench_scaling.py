"""`python -m eilab.bench --suite scaling` at tiny settings writes its tables and its plot."""

import re

import pytest
import torch

from eilab import bench


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


def test_scaling_suite_writes_tables_and_plot(tmp_path, capsys, restore_threads):
    out = tmp_path / "bench.md"
    args = ["--suite", "scaling", "--scaling-sizes", "16", "32", "--scaling-views", "4", "8"]
    args += ["--scaling-batch", "1", "--repeats", "1", "--warmup", "0", "--threads", "1"]
    bench.main([*args, "--out", str(out)])
    text = out.read_text()
    assert text in capsys.readouterr().out
    by_size = table_rows(text, "### vs image size (50 views, batch 1)")
    by_views = table_rows(text, "### vs number of views (128x128, batch 1)")
    assert list(by_size) == ["16", "32"]
    assert list(by_views) == ["4", "8"]
    for eilab_ms, deepinv_ms, ratio, build_s in [*by_size.values(), *by_views.values()]:
        assert float(eilab_ms) > 0 and float(build_s) > 0
        # deepinv is timed where it imports, else its cell says why (the main venv lacks it).
        if deepinv_ms.startswith("missing ("):
            assert ratio == "-"
        else:
            assert float(deepinv_ms) > 0 and re.fullmatch(r"[0-9.]+x", ratio)
    plot = tmp_path / "bench_scaling.png"
    assert plot.stat().st_size > 0
    assert f"- plot: {plot}" in text
