"""profile_step reports a step's wall time beside its operators' summed time, and the table."""

from eilab.bench.profile_step import main

TINY = ["img_size=16", "model.widths=[8]", "physics.n_views=4", "equivariance.n_trans=2"]


def test_the_report_names_the_step_its_times_and_the_heaviest_operators(tmp_path):
    out = tmp_path / "profile.md"
    text = main([*TINY, "--strategy", "mc", "--warmup", "1", "--steps", "2", "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert "# Profile of one mc step (cpu, eager)" in text
    wall = float(text.split("wall time per step: ")[1].split(" ms")[0])
    summed = float(text.split("self cpu time per step: ")[1].split(" ms")[0])
    assert 0 < summed <= wall * 1.05  # one thread of Python: the operators fit in the wall time
    assert "aten::convolution_backward" in text
