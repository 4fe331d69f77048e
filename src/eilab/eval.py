"""eilab-eval: reconstruct and score with a trained run's checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from skimage.io import imsave

from eilab.metrics import psnr
from eilab.train import build

ALLOWED_TARGETS = ("eilab.", "lightning.", "torch.")


def check_targets(node, allowed: tuple[str, ...] = ALLOWED_TARGETS, path: str = "") -> None:
    """Refuse a config read back from disk if any ``_target_`` lies outside ``allowed``."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(allowed):
            raise ValueError(f"{path}._target_ = {target!r} is not allowed (allowed: {allowed})")
        for key, value in node.items():
            check_targets(value, allowed, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_targets(value, allowed, f"{path}[{index}]")


def load_run(run_dir: Path, checkpoint: str, device: str):
    """Rebuild a run's module and data from its saved config and load its weights."""
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} not found: is {run_dir} an eilab-train run?")
    saved = OmegaConf.load(config_file)
    check_targets(OmegaConf.to_container(saved, resolve=False))
    ckpt = Path(checkpoint)
    if checkpoint in ("last", "best"):
        found = sorted((run_dir / "checkpoints").glob(f"{checkpoint}*.ckpt"))
        if not found:
            raise FileNotFoundError(f"no {checkpoint} checkpoint in {run_dir / 'checkpoints'}")
        ckpt = found[-1]
    module, datamodule = build(saved)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return module.to(device).eval(), datamodule, ckpt


def load_measurements(path: Path) -> torch.Tensor:
    """Measurements from a .pt (tensor) or .npy file, as float32."""
    if not path.exists():
        raise FileNotFoundError(f"measurements file {path} not found")
    try:
        data = torch.load(path, weights_only=True) if path.suffix == ".pt" else np.load(path)
    except Exception as error:
        raise ValueError(f"cannot read measurements from {path}: {error}") from error
    return torch.as_tensor(data, dtype=torch.float32)


def save_png(image: torch.Tensor, path: Path) -> None:
    """Save a (C, H, W) image in [0, 1]: RGB if 3 channels, else the first channel."""
    array = image.clamp(0, 1).cpu().numpy()
    array = array.transpose(1, 2, 0) if array.shape[0] == 3 else array[0]
    imsave(path, (array * 255).round().astype(np.uint8), check_contrast=False)


@torch.no_grad()
def evaluate(cfg: DictConfig, out_dir: Path) -> list[dict[str, float]]:
    """Reconstruct every item, write metrics.csv (when ground truth exists) and the images."""
    module, datamodule, ckpt = load_run(Path(cfg.run_dir), str(cfg.checkpoint), cfg.device)
    if cfg.measurements is not None:
        ys, xs = load_measurements(Path(cfg.measurements)), None
    else:
        datamodule.setup()
        dataset = datamodule.datasets[cfg.split]
        ys, xs = dataset.measurements, dataset.images
    recon = torch.cat([module(y[None].to(cfg.device)).cpu() for y in ys])
    torch.save(recon, out_dir / "reconstructions.pt")
    rows = [{"index": i} for i in range(len(recon))]
    if xs is not None:
        baseline = module.physics.A_dagger(ys.to(cfg.device)).cpu()
        for row, value, base in zip(rows, psnr(recon, xs), psnr(baseline, xs), strict=True):
            row.update(psnr=float(value), psnr_adagger=float(base))
        with open(out_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if cfg.save_images:
        for i, image in enumerate(recon):
            save_png(image, out_dir / f"recon_{i:04d}.png")
    print(f"checkpoint: {ckpt}\nwrote {len(recon)} reconstructions to {out_dir}")
    return rows


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    rows = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))
    if rows and "psnr" in rows[0]:
        mean = np.mean([r["psnr"] for r in rows])
        base = np.mean([r["psnr_adagger"] for r in rows])
        print(f"mean PSNR {mean:.2f} dB (A†y: {base:.2f} dB) over {len(rows)} images")


if __name__ == "__main__":
    main()
