"""A CUDA graph replay of a training step computes what the eager step computes."""

import pytest
import torch

from eilab.captured_step import CapturedStep
from eilab.train import build

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def one_step(step, module, inputs: tuple) -> dict[str, dict[str, torch.Tensor]]:
    """Run ``step(*inputs)`` after dropping the gradients, as Lightning does before validating;
    copies of its losses, the gradients and the network's buffers."""
    module.zero_grad(set_to_none=True)
    losses = step(*inputs)
    return {
        "losses": {name: value.detach().clone() for name, value in losses.items()},
        "grads": {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None},
        "buffers": {n: b.clone() for n, b in module.network_state.named_buffers()},
    }


def eager_step(module):
    def step(*inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        module.zero_grad(set_to_none=True)
        losses = module.training_losses(*inputs)
        losses["loss"].backward()
        return losses

    return step


@pytest.mark.parametrize("strategy", ["ei", "rei", "sup"])
def test_replays_equal_eager_steps(strategy, compose_train):
    """Two replays (new inputs each; Sup's are (y, x)) and a short batch (eager fallback)
    against the eager steps from the same random state: losses, gradients (back in
    ``param.grad`` although they were set to None before each step) and BatchNorm statistics
    agree to float32 summation order (cuSPARSE and cuDNN sum in varying orders even eagerly)."""
    noise = ["noise=gaussian"] if strategy == "rei" else []
    cfg = compose_train("debug=fast", f"strategy={strategy}", "img_size=32", *noise)
    module, datamodule = build(cfg)
    datamodule.setup()  # simulates on the CPU, with the physics the module shares
    module = module.cuda().train()
    train = datamodule.datasets["train"]
    pairs = (train.measurements[:6].cuda(), train.images[:6].cuda())
    batches = [
        tuple(t[part] for t in pairs[: 1 + module.uses_ground_truth])
        for part in (slice(0, 2), slice(2, 4), slice(4, 5))
    ]
    initial = {n: b.clone() for n, b in module.network_state.named_buffers()}
    torch.manual_seed(3)
    expected = [one_step(eager_step(module), module, batch) for batch in batches]
    with torch.no_grad():
        for name, buffer in module.network_state.named_buffers():
            buffer.copy_(initial[name])
    torch.manual_seed(3)
    captured = CapturedStep(module.training_losses, module, module.network_state)
    got = [one_step(captured, module, batch) for batch in batches]
    assert captured.captured is not None
    for step_index, (want, have) in enumerate(zip(expected, got, strict=True)):
        for part in ("losses", "grads", "buffers"):
            assert want[part].keys() == have[part].keys()
            for name in want[part]:
                torch.testing.assert_close(
                    have[part][name],
                    want[part][name],
                    rtol=1e-3,
                    atol=1e-5,
                    msg=lambda text, n=name, i=step_index, p=part: f"step {i} {p} {n}: {text}",
                )
