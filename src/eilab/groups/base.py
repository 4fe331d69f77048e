"""Transformation groups acting on (B, C, H, W) images, for the equivariance loss and theory."""

from __future__ import annotations

import torch


class Group:
    """A finite group of image transformations T_g, each element described by a parameter row.

    Parameters are float tensors of shape (K, param_dim), one row per element, so that
    elements of any group (and of compositions of groups) can be sampled, batched and stored
    uniformly. ``elements`` lists every element (identity first) for the identifiability checker;
    ``sample`` draws non-identity elements uniformly, since the identity adds nothing to EI.
    """

    param_dim: int = 1

    def elements(self, img_shape: tuple[int, int]) -> torch.Tensor:
        """All group elements acting on images of spatial size ``img_shape``, identity first."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Transform image i of the batch ``x`` by the element in row i of ``params``."""
        raise NotImplementedError

    def apply_inverse(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Apply the inverse of each element (exactly when ``is_exact``)."""
        raise NotImplementedError

    def is_exact(self, img_shape: tuple[int, int]) -> bool:
        """Whether every element is an exact permutation of pixels (so inverses are exact)."""
        return True

    def candidates(self, img_shape: tuple[int, int]) -> torch.Tensor:
        """The elements ``sample`` draws from: all but the identity (unless it is alone)."""
        elements = self.elements(img_shape)
        return elements[1:] if len(elements) > 1 else elements

    def sample(
        self,
        batch: int,
        img_shape: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``batch`` non-identity elements uniformly (the identity if it is the only one)."""
        return draw(self.candidates(img_shape), batch, generator)


def draw(
    candidates: torch.Tensor, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch`` rows of ``candidates`` drawn uniformly, on the candidates' device: on CUDA
    the draw needs no copy from the host (a captured CUDA graph may contain it)."""
    index = torch.randint(len(candidates), (batch,), generator=generator, device=candidates.device)
    return candidates[index]
