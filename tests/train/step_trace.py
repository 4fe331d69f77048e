"""A callback that appends its run's folder name to a file after every training batch."""

from pathlib import Path

import lightning as L


class TraceSteps(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        with self.path.open("a") as trace:
            trace.write(Path(trainer.default_root_dir).name + "\n")
