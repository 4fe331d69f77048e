"""eilab: Equivariant Imaging — learning to reconstruct images from measurements alone."""

__version__ = "0.1.0"
