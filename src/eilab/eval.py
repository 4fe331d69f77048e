"""eilab-eval: reconstruct and score with a trained run's checkpoint.

A run directory may come from anyone, so loading it is reading data, not running code: the saved
config may use only SAFE_RESOLVERS, must resolve to plain values, and may name only the
constructors in EVAL_TARGETS (compared exactly, after resolution); anything else is an
UnsafeRunConfigError before any object is built. Checkpoints load with weights_only=True, and
"last"/"best" are the files the run recorded in its run.json.

``dataset=<config>`` scores the run on another dataset: that node comes from the user's command
line and eilab's conf/dataset group, not from the run directory, so it is built as eilab-train
would build it; it replaces the run's dataset node, and its ``${img_size}`` / ``${channels}``
resolve against the run's config. Images that do not fit the run's physics and network are a
:class:`DatasetMismatchError` before any measurement is simulated.
"""

from __future__ import annotations

import csv
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import GrammarParseError
from skimage.io import imsave

from eilab import rundir
from eilab.checkpoints import load_checkpoint
from eilab.confine import UnsafePathError, refuse_symlink
from eilab.data.splits import ImageSplits
from eilab.metrics import psnr
from eilab.physics.base import image_size
from eilab.runconfig import UnsafeRunConfigError, leaves, load_yaml, resolvers_in
from eilab.train import build

#: The only constructors eilab-eval builds from a saved run, compared exactly after resolution:
#: every ``_target_`` under src/eilab/conf except the Trainer, loggers and callbacks (eval builds
#: none of those, see TRAIN_ONLY), and the noise models and strategies configs may name.
EVAL_TARGETS = (
    "eilab.physics.CT",
    "eilab.physics.CompressedSensing",
    "eilab.physics.Inpainting",
    "eilab.physics.MRI",
    "eilab.physics.GaussianNoise",
    "eilab.physics.PoissonNoise",
    "eilab.physics.PoissonGaussianNoise",
    "eilab.physics.TransmissionNoise",
    "eilab.physics.noise.GaussianNoise",
    "eilab.physics.noise.PoissonNoise",
    "eilab.physics.noise.PoissonGaussianNoise",
    "eilab.physics.noise.TransmissionNoise",
    "eilab.physics.noise.TransmissionNoise.for_field_of_view",
    "eilab.groups.Rotate",
    "eilab.groups.Shift",
    "eilab.groups.Reflect",
    "eilab.groups.Compose",
    "eilab.models.UNet",
    "eilab.models.PatchDiscriminator",
    "eilab.data.ellipse_splits",
    "eilab.data.folders.ct100_mat_splits",
    "eilab.data.folders.dicom_folder_splits",
    "eilab.data.folders.image_folder_splits",
    "eilab.data.folders.urban100_splits",
    "eilab.data.head_ct.head_ct_splits",
    "eilab.data.photos.photo_splits",
    "eilab.data.toy.triangle_splits",
    "eilab.strategies.MC",
    "eilab.strategies.EI",
    "eilab.strategies.EIAdv",
    "eilab.strategies.Sup",
    "eilab.strategies.EISup",
    "eilab.strategies.REI",
)
#: Resolvers a saved config may use: they read the config, the time or Hydra's settings. Refused
#: are all others, notably oc.create and oc.decode (they turn text into config nodes, which
#: could name any target after the check) and oc.env (it reads the environment).
SAFE_RESOLVERS = ("hydra", "now", "oc.select")
#: Top-level keys only eilab-train uses (Trainer, loggers, callbacks, the run's name): eval
#: drops them unresolved and builds nothing from them.
TRAIN_ONLY = ("trainer", "logger", "callbacks", "run_name")


class DatasetMismatchError(ValueError):
    """Another dataset's images do not fit the run's physics and network."""


def refuse_resolvers(raw: dict, source: Path) -> None:
    """Refuse any resolver outside SAFE_RESOLVERS, before anything is resolved."""
    for path, value in leaves(raw):
        if isinstance(value, str) and "${" in value:
            try:
                names = resolvers_in(value)
            except GrammarParseError as error:
                raise UnsafeRunConfigError(f"{source}: {path} = {value!r}: {error}") from error
            for name in names:
                if name not in SAFE_RESOLVERS:
                    raise UnsafeRunConfigError(
                        f"{source}: {path} uses the resolver {name!r}, which is not allowed in "
                        f"a saved run (allowed: {', '.join(SAFE_RESOLVERS)})"
                    )


def check_resolved(resolved: dict, source: Path) -> None:
    """Refuse a ``_target_`` outside EVAL_TARGETS, or a value that is an interpolation again
    (an escaped ``\\${...}`` resolves to one, and building would resolve it)."""
    for path, value in leaves(resolved):
        if isinstance(value, str) and "${" in value:
            raise UnsafeRunConfigError(
                f"{source}: {path} resolves to {value!r}, an interpolation again: a saved run "
                "must resolve to plain values"
            )
        if path.rsplit(".", 1)[-1] == "_target_" and value not in EVAL_TARGETS:
            raise UnsafeRunConfigError(
                f"{source}: {path} = {value!r} is not allowed: eilab-eval builds only "
                "eilab's own constructors (eilab.eval.EVAL_TARGETS)"
            )


def load_config(run_dir: Path) -> DictConfig:
    """A run's saved config as data: resolvers checked, resolved, targets checked, rebuilt.

    Nothing is built here; any refused item (a YAML bomb too, see eilab.runconfig) is an
    :class:`UnsafeRunConfigError`.
    """
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} not found: is {run_dir} an eilab-train run?")
    saved = load_yaml(config_file)
    refuse_resolvers(OmegaConf.to_container(saved, resolve=False), config_file)
    resolved = {}
    for key in saved:
        if key not in TRAIN_ONLY:
            value = saved[key]
            resolved[key] = (
                OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            )
    check_resolved(resolved, config_file)
    return OmegaConf.create(resolved)


def with_dataset(cfg: DictConfig, dataset: DictConfig) -> DictConfig:
    """The run's config with ``dataset`` (a trusted node, see above) as its dataset, resolved
    against the run's config; a mandatory value left out (``root: ???``) is named."""
    merged = OmegaConf.create(
        {**OmegaConf.to_container(cfg), "dataset": OmegaConf.to_container(dataset)}
    )
    missing = sorted(OmegaConf.missing_keys(merged.dataset))
    if missing:
        raise ValueError(
            f"{missing[0]} must be given for dataset {dataset._target_}: add "
            f"{missing[0]}=... to the eilab-eval command line"
        )
    OmegaConf.resolve(merged)
    return merged


def image_shape(cfg: DictConfig) -> tuple[int, ...]:
    """(C, H, W) of the images a run's physics and network take."""
    if "img_shape" in cfg.physics:  # compressed sensing names its whole input shape
        return tuple(cfg.physics.img_shape)
    return (cfg.channels, *image_size(cfg.physics.img_size))


def check_images_fit(splits: ImageSplits, cfg: DictConfig, run_dir: Path) -> None:
    """Refuse another dataset whose images are not the (C, H, W) the run was trained on."""
    expected = image_shape(cfg)
    shape = tuple(splits.test.shape[1:])  # ImageSplits: every split has the same shape
    if shape != expected:
        raise DatasetMismatchError(
            f"dataset {cfg.dataset._target_} gives images of (channels, height, width) "
            f"{shape}, but the run {run_dir} ({cfg.physics._target_}, a network for "
            f"{expected[0]} channel(s)) takes {expected}: leave dataset.img_size and "
            "dataset.channels to follow the run's, or pick a dataset whose images have "
            f"{expected[0]} channel(s)"
        )


def load_run(run_dir: Path, checkpoint: str, device: str, dataset: DictConfig | None = None):
    """Rebuild a run's module and data from its saved config and load its weights.

    ``checkpoint`` "last" or "best" is the file the run recorded in run.json; else a path.
    ``dataset``, when given, replaces the run's dataset (see :func:`with_dataset`); its images
    are checked against the run's before the weights are read.
    """
    cfg = load_config(run_dir)
    cfg.check_identifiability = False  # the run trained already: no check, no cache written
    if dataset is not None:
        cfg = with_dataset(cfg, dataset)
    if checkpoint in ("last", "best"):
        ckpt = rundir.recorded_checkpoint(run_dir, checkpoint, hint="checkpoint")
    else:
        ckpt = Path(checkpoint)
    module, datamodule = build(cfg)
    if dataset is not None:
        check_images_fit(datamodule.splits, cfg, run_dir)
    module.load_state_dict(load_checkpoint(ckpt)["state_dict"])
    return module.to(device).eval(), datamodule, ckpt


def load_measurements(path: Path) -> torch.Tensor:
    """Measurements from a .pt (tensor) or .npy file, as float32; anything but a non-empty
    array, or NaN or Inf, is refused naming the file."""
    if not path.exists():
        raise FileNotFoundError(f"measurements file {path} not found")
    try:
        data = torch.load(path, weights_only=True) if path.suffix == ".pt" else np.load(path)
    except Exception as error:
        raise ValueError(f"cannot read measurements from {path}: {error}") from error
    if not isinstance(data, torch.Tensor | np.ndarray) or data.dtype == object:
        raise ValueError(f"measurements file {path} holds a {type(data).__name__}, not an array")
    measurements = torch.as_tensor(data, dtype=torch.float32)
    if measurements.numel() == 0:
        raise ValueError(f"measurements file {path} holds no values (shape {data.shape})")
    bad = int((~torch.isfinite(measurements)).sum())
    if bad:
        raise ValueError(
            f"measurements file {path} holds {bad} non-finite values (NaN or Inf) out of "
            f"{measurements.numel()}"
        )
    return measurements


def save_png(image: torch.Tensor, path: Path) -> None:
    """Save a (C, H, W) image in [0, 1]: RGB if 3 channels, else the first channel."""
    array = image.clamp(0, 1).cpu().numpy()
    array = array.transpose(1, 2, 0) if array.shape[0] == 3 else array[0]
    imsave(path, (array * 255).round().astype(np.uint8), check_contrast=False)


@torch.no_grad()
def evaluate(cfg: DictConfig, out_dir: Path) -> list[dict[str, float]]:
    """Reconstruct every item, write metrics.csv (when ground truth exists) and the images.

    With ``dataset`` set, the items are that dataset's ``split``, simulated with the run's
    physics. A fresh_noise run's train split gives its epoch-0 draw."""
    dataset_cfg = cfg.get("dataset")
    if dataset_cfg is not None and cfg.measurements is not None:
        raise ValueError(
            "eilab-eval: give either dataset= (images to simulate and score) or measurements= "
            "(your own measurements), not both"
        )
    module, datamodule, ckpt = load_run(
        Path(cfg.run_dir), str(cfg.checkpoint), cfg.device, dataset_cfg
    )
    if cfg.measurements is not None:
        ys, xs = load_measurements(Path(cfg.measurements)), None
    else:
        datamodule.setup()
        dataset = datamodule.datasets[cfg.split]
        ys = torch.stack([dataset[i]["y"] for i in range(len(dataset))])
        xs = dataset.images
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
    source = f" of {dataset_cfg._target_}" if dataset_cfg is not None else ""
    print(f"checkpoint: {ckpt}\nwrote {len(recon)} reconstructions{source} to {out_dir}")
    return rows


def eval_dir(run_dir: str) -> str:
    """Resolver for ``hydra.run.dir``: ``<run_dir>/eval``, refused when it is a symlink, before
    Hydra creates the output folder and writes its config and log there."""
    try:
        refuse_symlink(Path(run_dir) / "eval")
    except UnsafePathError as error:  # Hydra cannot format an error raised by its own settings
        raise SystemExit(f"UnsafePathError: {error}") from error
    return str(Path(run_dir) / "eval")


OmegaConf.register_new_resolver("eilab.eval_dir", eval_dir, replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    rows = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))
    if rows and "psnr" in rows[0]:
        mean = np.mean([r["psnr"] for r in rows])
        base = np.mean([r["psnr_adagger"] for r in rows])
        print(f"mean PSNR {mean:.2f} dB (A†y: {base:.2f} dB) over {len(rows)} images")


if __name__ == "__main__":
    main()
