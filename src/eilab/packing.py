"""Packed sweeps: the jobs of a multirun train together in one process, taking turns.

At the paper's CT scale one run leaves a GPU mostly idle: its step is bound by kernel launches
and Python, not by the card. Packing runs K jobs in K threads of one process, each issuing its
kernels on its own CUDA stream, so the card works on one job's step while Python prepares the
next one's. Only one thread runs at a time: a baton goes round the jobs after every training
and validation batch. At every hand-over the process-wide state a run reads or changes (the
random generators, Hydra's config, the log handlers, Lightning's seed variables, the working
directory) is put back as that job left it, so each job computes and writes what it would
alone. Each job stays an ordinary run: its own directory, metrics, checkpoints and loggers.

Only jobs that differ in per-run values (``PACKABLE_KEYS``: α, the seeds, the optimiser's
rates, REI's τ and noise-level settings) are packed; a sweep over strategies, physics, image
sizes or n_trans is refused, naming the key, since its jobs do different work at different
costs.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.callbacks import TQDMProgressBar

#: Config keys whose values may differ between the jobs of a packed sweep.
PACKABLE_KEYS = frozenset(
    {
        "equivariance.alpha",
        "seed",
        "noise_seed",
        "optim.lr",
        "optim.weight_decay",
        "optim.gamma",
        "optim.milestones",
        "strategy.tau",
        "strategy.noise_momentum",
        "strategy.noise_init_scale",
    }
)
#: Environment variables Lightning's ``seed_everything`` sets for the run that called it.
SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")

Result = TypeVar("Result")


class UnpackableSweepError(ValueError):
    """The jobs of a sweep differ in something a packed sweep cannot share."""


def differing_keys(job_overrides: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """``{key: each job's value}`` for every override key whose value is not the same in all
    jobs (a job without the key counts as the value ``<default>``)."""
    parser = OverridesParser.create()
    jobs = [
        {o.get_key_element(): o.get_value_element_as_str() for o in parser.parse_overrides(list(j))}
        for j in job_overrides
    ]
    keys = dict.fromkeys(key for job in jobs for key in job)
    values = {key: [job.get(key, "<default>") for job in jobs] for key in keys}
    return {key: vals for key, vals in values.items() if len(set(vals)) > 1}


def check_packable(job_overrides: Sequence[Sequence[str]]) -> None:
    """Refuse, before any work, a sweep whose jobs differ in a key outside PACKABLE_KEYS."""
    for key, values in differing_keys(job_overrides).items():
        if key.lstrip("+~") not in PACKABLE_KEYS:
            raise UnpackableSweepError(
                f"hydra/launcher=packed: the jobs differ in {key} ({', '.join(values)}), which "
                "a packed sweep cannot share: its jobs train together on one device and may "
                f"differ only in {', '.join(sorted(PACKABLE_KEYS))}. Run this sweep with the "
                "default launcher (drop hydra/launcher=packed) or hydra/launcher=local"
            )


def check_one_device(trainer: Any, job: str) -> None:
    """Refuse a job whose Trainer would start several processes (DDP, several devices)."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if str(devices) != "1" or nodes != 1:
        raise UnpackableSweepError(
            f"hydra/launcher=packed: job {job} asks for trainer.devices={devices}, "
            f"trainer.num_nodes={nodes}; packed jobs share one device in one process: set "
            "trainer.devices=1 (and num_nodes=1), or use hydra/launcher=slurm for DDP jobs"
        )


@dataclass
class ProcessState:
    """What a run reads or changes that belongs to the whole process, captured to be put back."""

    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    numpy_rng: tuple
    python_rng: tuple
    hydra_cfg: Any
    log_handlers: list[logging.Handler]
    log_level: int
    seed_variables: dict[str, str | None]
    cwd: str

    @classmethod
    def capture(cls) -> ProcessState:
        return cls(
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
            hydra_cfg=HydraConfig.instance().cfg,
            log_handlers=list(logging.root.handlers),
            log_level=logging.root.level,
            seed_variables={name: os.environ.get(name) for name in SEED_VARIABLES},
            cwd=os.getcwd(),
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        HydraConfig.instance().cfg = self.hydra_cfg
        logging.root.handlers[:] = self.log_handlers
        logging.root.setLevel(self.log_level)
        for name, value in self.seed_variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)


class Baton:
    """Round-robin turns among ``members`` threads: only the holder runs; a member that leaves
    hands its turn on."""

    def __init__(self, members: int) -> None:
        self._order = list(range(members))
        self._holder = 0
        self._changed = threading.Condition()

    @property
    def alone(self) -> bool:
        with self._changed:
            return len(self._order) == 1

    def wait_turn(self, member: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._holder == member)

    def pass_turn(self, member: int) -> None:
        """Hand the turn to the next member and wait until it comes back."""
        with self._changed:
            self._holder = self._next(member)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._holder == member)

    def leave(self, member: int) -> None:
        with self._changed:
            following = self._next(member)
            self._order.remove(member)
            if self._holder == member and self._order:
                self._holder = following
            self._changed.notify_all()

    def _next(self, member: int) -> int:
        return self._order[(self._order.index(member) + 1) % len(self._order)]


class PackedRun:
    """One job's place in a packed sweep: waits for its turn, and keeps its process state
    across the other jobs' turns."""

    def __init__(self, baton: Baton, member: int, initial: ProcessState) -> None:
        self.baton, self.member, self.initial = baton, member, initial

    def start(self) -> None:
        """Wait for the first turn; begin from the process state the sweep started with."""
        self.baton.wait_turn(self.member)
        self.initial.restore()

    def pass_turn(self) -> None:
        """Let the other jobs take a turn, then carry on from this job's own state."""
        if self.baton.alone:
            return
        state = ProcessState.capture()
        self.baton.pass_turn(self.member)
        state.restore()

    def finish(self) -> None:
        self.baton.leave(self.member)


class PassTurn(L.Callback):
    """Hands the device to the next packed job after each training and validation batch."""

    def __init__(self, run: PackedRun) -> None:
        self.run = run

    def on_train_batch_end(self, *args: Any) -> None:
        self.run.pass_turn()

    def on_validation_batch_end(self, *args: Any) -> None:
        self.run.pass_turn()


_this_thread = threading.local()


def current_run() -> PackedRun | None:
    """The packed job this thread runs, or None outside a packed sweep."""
    return getattr(_this_thread, "run", None)


def turn_callbacks(progress_bar: bool) -> list[L.Callback]:
    """The Trainer callbacks a packed job needs (none outside a packed sweep): its turns, and
    with ``progress_bar`` a progress bar on its own lines of the terminal."""
    run = current_run()
    if run is None:
        return []
    bars = [TQDMProgressBar(process_position=run.member)] if progress_bar else []
    return [PassTurn(run), *bars]


def run_packed(jobs: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run ``jobs`` in turns, one thread each (each on its own CUDA stream where CUDA is
    available); return their results in order. An exception a job raises is raised here
    after every job has ended."""
    if torch.cuda.is_available():
        torch.cuda.init()  # so every job's CUDA random state is captured from the start
    baton = Baton(len(jobs))
    initial = ProcessState.capture()
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(member: int) -> None:
        run = PackedRun(baton, member, initial)
        _this_thread.run = run
        try:
            if torch.cuda.is_available():
                torch.cuda.set_stream(torch.cuda.Stream())
            run.start()
            results[member] = jobs[member]()
        except BaseException as error:  # re-raised in the launching thread
            errors.append(error)
        finally:
            run.finish()

    threads = [
        threading.Thread(target=work, args=(k,), name=f"packed-job-{k}", daemon=True)
        for k in range(len(jobs))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    initial.restore()
    if errors:
        raise errors[0]
    return results
