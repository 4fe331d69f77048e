"""Time eilab's CT operator and training step beside their peers: ``python -m eilab.bench``.

Three suites (``--suite ops|train|sure|all``), on ``--device cpu`` (default) or ``cuda``:

- ``ops`` (:mod:`eilab.bench.ops`): one call of the CT forward ``A``, adjoint ``A_adjoint``,
  FBP ``A_dagger`` and ``A`` then ``A_adjoint`` of eilab ``CT``, deepinv ``Tomography`` and
  scikit-image ``radon``/``iradon``, plus a geometry check of each against scikit-image;
- ``train`` (:mod:`eilab.bench.train_step`): one optimisation step of each strategy, built from
  the Hydra configs eilab-train composes, beside deepinv's losses on the same network;
- ``sure`` (:mod:`eilab.bench.peer_sure`): eilab's SURE and REQ values beside deepinv's.

The CT backends' scaling (time and peak memory versus image size and views, each cell in a
child process) has its own command, ``python -m eilab.bench.scaling`` (``make bench-scaling``),
and so has where a training step's time goes, ``python -m eilab.bench.profile_step``.

Every cell is timed by ``torch.utils.benchmark`` (:mod:`eilab.bench.timing`) and reported as
median (interquartile range) in milliseconds. eilab's operators and strategies come from the
same configs as training (:func:`compose_train`): the train suite's defaults are
``experiment=ct_table1``, the paper's CT settings. deepinv needs torchvision, which does not
import beside the project's CPU torch: run this in the bench environment built by
``tools/setup_bench_env.sh`` (``make bench``).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

#: The configuration every suite starts from: Table 1's CT (128², 50 views, paper U-Net).
BASE_OVERRIDES = ("experiment=ct_table1",)


def compose_train(overrides: Sequence[str]) -> DictConfig:
    """The train config as ``eilab-train experiment=ct_table1 <overrides>`` composes it."""
    with initialize_config_module("eilab.conf", version_base="1.3"):
        return compose("train", overrides=[*BASE_OVERRIDES, *overrides])
