"""How the CT operators scale: ``A`` then ``A_adjoint`` versus image size and number of views.

eilab ``CT`` and deepinv ``Tomography`` (as in :mod:`eilab.bench.ops`; scikit-image has no
adjoint), with the one-off wall time of building eilab's ``CT`` (its sparse system matrices, on
the CPU) and moving it to the device. Every case starts from freshly built operators, which are
freed afterwards, so a large case does not hold memory for the next.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from eilab.bench.ops import BUILDERS, Case, phantom_batch, time_ops
from eilab.bench.report import loglog_plot, section, table
from eilab.bench.timing import Budget, Cell, Timing, attempt, free_memory, ratio, timed_once

LIBS = ("eilab", "deepinv")


@dataclass(frozen=True)
class Sweep:
    """One sweep: what varies (its name and column key), what is fixed, its cases."""

    name: str
    key: str
    fixed: str
    values: tuple[int, ...]
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Sweeps:
    """``sizes`` at ``fixed_views`` views, and ``views`` at ``fixed_size``², at ``batch``."""

    sizes: tuple[int, ...] = (64, 128, 256, 512)
    views: tuple[int, ...] = (25, 50, 90, 180, 360)
    batch: int = 8
    fixed_size: int = 128
    fixed_views: int = 50

    def sweeps(self) -> list[Sweep]:
        """The image-size sweep, then the number-of-views sweep."""
        by_size = tuple(Case(n, self.fixed_views, self.batch) for n in self.sizes)
        by_views = tuple(Case(self.fixed_size, v, self.batch) for v in self.views)
        square = f"{self.fixed_size}x{self.fixed_size}"
        return [
            Sweep("image size", "N", f"{self.fixed_views} views", self.sizes, by_size),
            Sweep("number of views", "views", square, self.views, by_views),
        ]


def time_case(case: Case, budget: Budget, device: torch.device) -> dict[str, Cell]:
    """Each library's forward+adjoint timing, and eilab's build seconds (a string cell)."""
    print(f"[bench] scaling N={case.size} views={case.views}", file=sys.stderr)
    free_memory(device)
    geometry = (case.size, case.views, device)
    built = attempt(functools.partial(timed_once, functools.partial(BUILDERS["eilab"], *geometry)))
    libraries = {
        "eilab": built if isinstance(built, str) else built[0],
        "deepinv": attempt(functools.partial(BUILDERS["deepinv"], *geometry)),
    }
    x = phantom_batch(case.size, case.batch, device)
    pair = ["forward+adjoint"]
    cells = {name: time_ops(ops, x, budget, pair)[pair[0]] for name, ops in libraries.items()}
    cells["build s"] = built if isinstance(built, str) else f"{built[1]:.2f}"
    del libraries, x
    free_memory(device)
    return cells


def scaling_section(config: Sweeps, budget: Budget, device: torch.device, plot: Path) -> str:
    """Run both sweeps, write their log-log plot to ``plot``, return the markdown section."""
    sweeps = config.sweeps()
    cases = dict.fromkeys(case for sweep in sweeps for case in sweep.cases)
    timed = {case: time_case(case, budget, device) for case in cases}
    body, panels = [f"- plot: {plot}"], []
    header = ["eilab ms (IQR)", "deepinv ms (IQR)", "deepinv / eilab", "eilab build s"]
    for sweep in sweeps:
        results = [timed[case] for case in sweep.cases]
        lines = [
            [value, r["eilab"], r["deepinv"], ratio(r["deepinv"], r["eilab"]), r["build s"]]
            for value, r in zip(sweep.values, results, strict=True)
        ]
        title = f"### vs {sweep.name} ({sweep.fixed}, batch {config.batch})"
        body += ["", title, "", *table([sweep.key, *header], lines, numeric_from=0)]
        series = {
            lib: [
                (value, r[lib].median_ms)
                for value, r in zip(sweep.values, results, strict=True)
                if isinstance(r[lib], Timing)
            ]
            for lib in LIBS
        }
        panels.append((f"{sweep.name} ({sweep.fixed})", sweep.values, series))
    where = f"{device.type.upper()}, batch {config.batch}"
    loglog_plot(plot, f"CT forward + adjoint, {where}", "A + A_adjoint, median ms", panels)
    return section(
        f"CT operator scaling ({where}, float32, ms of A then A_adjoint)",
        [
            budget.describe(),
            "one call = one forward A(x) (no_grad) then one adjoint A_adjoint(y); ratio = deepinv "
            "median / eilab median (>1: eilab faster); scikit-image has no adjoint",
            "eilab build s = one-off wall time of CT(N, views) from the physics config (sparse "
            "system matrices, on the CPU) and its move to the device; not part of the ms",
        ],
        body,
    )
