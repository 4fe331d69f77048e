"""Print one line per run: epoch time (median over epochs after the first) and test PSNR."""

import csv
import json
import statistics
import sys
from pathlib import Path

run_dir, name = Path(sys.argv[1]), sys.argv[2]
with open(run_dir / "logs" / "metrics.csv") as handle:
    rows = list(csv.DictReader(handle))
times = [float(r["train/epoch_time_s"]) for r in rows if r.get("train/epoch_time_s")]
steady = times[1:] or times
metrics = json.loads((run_dir / "metrics.json").read_text())
print(
    f"{name:10s} epochs {len(times):4d}  epoch time {statistics.median(steady):7.3f} s "
    f"(first {times[0]:.2f} s)  test PSNR {metrics['test/psnr']:6.2f}  "
    f"SSIM {metrics['test/ssim']:.3f}  A†y PSNR {metrics['test/psnr_adagger']:6.2f}"
)
