"""Epoch time of every finished run under the given directories: the median over epochs after
the first (which includes start-up), a column eilab-report's table does not have.

    python experiments/paper_scale/summarise.py outputs/throughput [more run directories]
"""

import statistics
import sys
from pathlib import Path

from eilab.report import find_run_dirs, read_run

for run in filter(None, map(read_run, find_run_dirs(map(Path, sys.argv[1:])))):
    _, times = run.series("train/epoch_time_s")
    steady = times[1:] if len(times) > 1 else times
    print(
        f"{run.label:28s} {run.value('trainer.precision'):>10s}  epochs {len(times):4d}  "
        f"epoch time {statistics.median(steady):7.3f} s (first {times[0]:.2f} s)  "
        f"test PSNR {run.test['test/psnr']:6.2f}  {run.run_dir.name}"
    )
