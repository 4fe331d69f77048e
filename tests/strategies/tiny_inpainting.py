"""A tiny inpainting problem on real photograph crops, small enough to train in seconds."""

import lightning as L
import numpy as np
import torch
from skimage import data
from skimage.transform import resize
from torch.utils.data import DataLoader

SIZE = 32


def camera_crops(count: int, seed: int = 0) -> torch.Tensor:
    """Random SIZE×SIZE crops of scikit-image's camera photograph, scaled to [0, 1]."""
    image = resize(data.camera() / 255.0, (128, 128), anti_aliasing=True)
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 128 - SIZE, size=(count, 2))
    crops = [image[i : i + SIZE, j : j + SIZE] for i, j in corners]
    return torch.tensor(np.stack(crops), dtype=torch.float32)[:, None]


def fit_and_test(module, train_set, test_set, steps: int) -> dict[str, float]:
    """Train with a plain Lightning Trainer on CPU for ``steps`` steps; return test metrics."""
    trainer = quiet_trainer(steps)
    trainer.fit(module, DataLoader(train_set, batch_size=4, shuffle=True))
    return trainer.test(module, DataLoader(test_set, batch_size=16), verbose=False)[0]


def cpu_trainer(**options) -> L.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or summary; ``options`` added."""
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def quiet_trainer(steps: int) -> L.Trainer:
    """A seeded CPU Trainer for ``steps`` steps, with no logger, checkpoints or validation."""
    L.seed_everything(0, verbose=False)
    return cpu_trainer(max_steps=steps, limit_val_batches=0)
