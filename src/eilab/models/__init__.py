"""Networks: the residual U-Net G, the PatchGAN discriminator and f = G ∘ A†."""

from eilab.models.discriminator import PatchDiscriminator
from eilab.models.reconstructor import Reconstructor
from eilab.models.unet import UNet

__all__ = ["PatchDiscriminator", "Reconstructor", "UNet"]
