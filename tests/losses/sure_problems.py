"""Small problems and a fixed network on which the SURE estimates are checked against the
true error (tests/losses)."""

import torch
from torch import nn

from eilab.physics import CT, Inpainting

SIZE = 16


class FixedNetwork(nn.Module):
    """A fixed random residual map x + 0.5·conv(tanh(conv(x))): smooth and far from identity."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.inner = nn.Conv2d(1, 8, 3, padding=1)
        self.outer = nn.Conv2d(8, 1, 3, padding=1)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.5 * self.outer(torch.tanh(self.inner(x)))


def phantom(scale: float) -> torch.Tensor:
    return scale * torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


PROBLEMS = {
    "inpainting": lambda: (Inpainting(SIZE, drop_rate=0.3), phantom(1.0)),
    "ct": lambda: (CT(SIZE, n_views=8), phantom(0.4)),
}
