"""The tiny-study experiment configs (experiments/tiny_strategies): their settings, and a
debug=fast multirun of both followed by eilab-report, as the study's README runs them."""

import subprocess
import sys

import pytest

from eilab.models import PatchDiscriminator
from eilab.physics import CT, Inpainting
from eilab.report import main as report_main
from eilab.train import build

#: experiment -> (physics class, its setting, alpha), as experiments/tiny_strategies says.
TINY = {
    "tiny_inpainting": (Inpainting, ("drop_rate", 0.3), 1.0),
    "tiny_ct": (CT, ("n_views", 12), 100.0),
}


@pytest.mark.parametrize("experiment", TINY)
def test_tiny_config_has_the_studys_data_and_budget(experiment, compose_train):
    cfg = compose_train(f"experiment={experiment}")
    module, datamodule = build(cfg)
    datamodule.setup("fit")
    physics_class, (key, value), alpha = TINY[experiment]
    assert isinstance(module.physics, physics_class) and cfg.physics[key] == value
    assert module.alpha == alpha and module.ei_loss.n_trans == 2 and module.lr == 1e-3
    sizes = {split: tuple(getattr(datamodule.splits, split).shape) for split in ("train", "val")}
    assert sizes == {"train": (64, 1, 32, 32), "val": (16, 1, 32, 32)}
    assert tuple(datamodule.splits.test.shape) == (16, 1, 32, 32)
    steps = len(datamodule.train_dataloader()) * cfg.trainer.max_epochs
    assert steps == 416  # the published table's 400 steps, rounded up to whole epochs
    assert list(cfg.model.widths) == [16, 32] and cfg.model.norm == "none"


def test_tiny_inpainting_tests_on_photographs_it_never_trains_on(compose_train):
    cfg = compose_train("experiment=tiny_inpainting")
    _, datamodule = build(cfg)
    sources = datamodule.splits.sources
    assert "camera" in sources["train"]
    assert not set(sources["test"]) & set(sources["train"])


def test_ei_adv_of_the_study_gets_a_discriminator_of_the_unets_size(compose_train):
    cfg = compose_train(
        "experiment=tiny_inpainting",
        "strategy=ei_adv",
        "strategy.discriminator.widths=[16,32]",
    )
    module, _ = build(cfg)
    (disc,) = [m for m in module.modules() if isinstance(m, PatchDiscriminator)]
    widths = [m.out_channels for m in disc.modules() if hasattr(m, "out_channels")]
    assert max(widths) == 32


def test_debug_fast_multirun_of_both_tiny_configs_and_their_report(tmp_path):
    command = [sys.executable, "-m", "eilab.train", "-m", "experiment=tiny_inpainting,tiny_ct"]
    command += ["strategy=ei", "debug=fast", "hydra.sweep.dir=sweep"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "runs.md").read_text()
    assert "2 finished runs" in text
    assert "| ei/inpainting/shift (tiny_inpainting) |" in text
    assert "| ei/ct/rotate (tiny_ct) |" in text
