"""fast_step=true trains as fast_step=false does: the same batches, losses, schedule, weights."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException

from eilab.captured_step import CapturedStep
from eilab.data.datamodule import MeasurementDataModule, ResidentBatches
from eilab.train import build

#: fast_step serves the strategies with one optimiser: here one without ground truth, one
#: with it, and REI (a noise model, and a learned parameter beside the network's).
STRATEGIES = {"ei": [], "sup": [], "rei": ["noise=gaussian"]}


def trained(compose_train, device: str, *overrides: str) -> tuple[L.LightningModule, list]:
    """A debug=fast run of three epochs, the learning rate dropped after the first and a
    validation after each (Lightning drops the gradients before it); the module and the
    training losses of every epoch."""
    cfg = compose_train("debug=fast", "optim.milestones=[1]", *overrides)
    L.seed_everything(0, verbose=False)
    module, datamodule = build(cfg)
    losses = []
    epoch_end = L.Callback()
    epoch_end.on_train_epoch_end = lambda trainer, _: losses.append(
        float(trainer.callback_metrics["train/loss"])
    )
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=3,
        limit_train_batches=4,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[epoch_end],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return module, losses


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fast_step_trains_as_the_eager_step(strategy, compose_train, device):
    """On the CPU the two are the same computation in another loop (resident batches, manual
    optimisation, schedules stepped by the module): bit for bit. On CUDA, where even two eager
    runs differ (cuSPARSE, cuDNN and TF32 sum in varying orders) and Adam's normalised step
    turns tiny gradient differences into visible weight differences, the fast step (CUDA graph,
    fused Adam) must give the same epoch losses within 1 %; tests/test_captured_step.py checks
    one step exactly."""
    options = [f"strategy={strategy}", *STRATEGIES[strategy]]
    eager, eager_losses = trained(compose_train, device, *options, "fast_step=false")
    fast, fast_losses = trained(compose_train, device, *options, "fast_step=true")
    assert fast.automatic_optimization is False
    assert fast.optimizers().param_groups[0]["lr"] == pytest.approx(fast.lr * fast.gamma)
    assert len(fast_losses) == 3
    if device == "cuda":
        torch.testing.assert_close(fast_losses, eager_losses, rtol=1e-2, atol=0)
        return
    assert fast_losses == eager_losses
    for (name, a), b in zip(eager.state_dict().items(), fast.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resident_batches_keep_the_data_loaders_order(compose_train):
    cfg = compose_train("debug=fast")
    _, datamodule = build(cfg)
    datamodule.setup()
    torch.manual_seed(5)
    expected = [batch["y"] for batch in datamodule._loader("train", 3, shuffle=True)]
    torch.manual_seed(5)
    resident = ResidentBatches(datamodule.datasets["train"], 3, torch.device("cpu"))
    served = [batch["y"] for batch in resident]
    assert len(resident) == len(expected) and len(served) == len(expected)
    for a, b in zip(expected, served, strict=True):
        assert torch.equal(a, b)


def test_fast_step_refuses_what_it_cannot_serve(compose_train):
    with pytest.raises(InstantiationException, match="EIAdv: fast_step is not available"):
        build(compose_train("debug=fast", "strategy=ei_adv", "fast_step=true"))
    rei = ["strategy=rei", "noise=gaussian", "strategy.unknown_noise=true", "fast_step=true"]
    with pytest.raises(InstantiationException, match="REI: fast_step is not available"):
        build(compose_train("debug=fast", *rei))
    with pytest.raises(ValueError, match="fresh_noise=true redraws"):
        build(compose_train("debug=fast", "noise=gaussian", "fresh_noise=true", "fast_step=true"))
    _, datamodule = build(compose_train("debug=fast", "fast_step=true"))
    datamodule.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(ValueError, match="runs 2 processes; set fast_step=false"):
        datamodule.train_dataloader()
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        CapturedStep(lambda: {}, torch.nn.Linear(1, 1), warmup=0)


def test_resident_pairs_live_on_the_trainers_device(compose_train):
    _, datamodule = build(compose_train("debug=fast", "fast_step=true"))
    datamodule.setup()
    datamodule.trainer = SimpleNamespace(world_size=1, strategy=SimpleNamespace(root_device="cpu"))
    loader = datamodule.train_dataloader()
    assert isinstance(loader, ResidentBatches) and isinstance(datamodule, MeasurementDataModule)
    batch = next(iter(loader))
    assert batch["y"].shape[0] == datamodule.batch_size
