"""Turn an eilab-train multirun over equivariance.alpha into a table and a PSNR-vs-alpha plot.

python experiments/alpha_sweep/collect.py outputs/multirun/<sweep> [more sweeps...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
from omegaconf import OmegaConf


def collect(sweeps: list[Path]) -> list[dict]:
    """One row per finished job: strategy, alpha, test PSNR/SSIM and the A†y baseline."""
    rows = []
    for metrics_file in sorted(p for sweep in sweeps for p in sweep.glob("*/metrics.json")):
        job = metrics_file.parent
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        overrides = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.runtime.choices
        metrics = json.loads(metrics_file.read_text())
        rows.append(
            {
                "job": job.name,
                "strategy": overrides.strategy,
                "alpha": float(config.equivariance.alpha),
                "psnr": metrics["test/psnr"],
                "ssim": metrics["test/ssim"],
                "psnr_adagger": metrics["test/psnr_adagger"],
            }
        )
    if not rows:
        raise SystemExit(f"no finished jobs (*/metrics.json) under {[str(s) for s in sweeps]}")
    return sorted(rows, key=lambda r: (r["strategy"], r["alpha"]))


def markdown(rows: list[dict]) -> str:
    lines = [
        "| strategy | alpha | test PSNR (dB) | test SSIM | A†y PSNR (dB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['alpha']:g} | {r['psnr']:.2f} | {r['ssim']:.3f} "
            f"| {r['psnr_adagger']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for strategy in sorted({r["strategy"] for r in rows}):
        mine = [r for r in rows if r["strategy"] == strategy]
        axis.plot([r["alpha"] for r in mine], [r["psnr"] for r in mine], "o-", label=strategy)
    axis.axhline(rows[0]["psnr_adagger"], color="gray", linestyle="--", label="A†y")
    axis.set(xscale="log", xlabel="α (equivariance weight)", ylabel="test PSNR (dB)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="multirun directories")
    parser.add_argument("--out", type=Path, default=Path("outputs/alpha_sweep"))
    args = parser.parse_args()
    rows = collect(args.sweeps)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (args.out / "alpha_sweep.md").write_text(table + "\n")
    plot(rows, args.out / "alpha_sweep.png")
    print(table)
    print(f"\nwrote {args.out / 'alpha_sweep.md'} and {args.out / 'alpha_sweep.png'}")


if __name__ == "__main__":
    main()
