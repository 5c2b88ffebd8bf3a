"""The optional per-epoch progress bar of the stochastic solvers (see fastmlp.set_config)."""

import sys
import time

from fastmlp._config import get_config


class EpochProgress:
    """Shows epochs done, the loss and samples/s: tqdm when installed, else a stderr line.

    Does nothing unless ``fastmlp.set_config(progress_bar=True)``.
    """

    def __init__(self, total_epochs, samples_per_epoch, description):
        self.enabled = get_config()["progress_bar"]
        self.samples = samples_per_epoch
        self.total = total_epochs
        self.done = 0
        self.bar = None
        self.last = time.perf_counter()
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return  # the plain line below
        # Epochs are coarse: draw every one (mininterval=0) so short fits show their end too.
        self.bar = tqdm(
            total=total_epochs, desc=description, unit="epoch", leave=False, mininterval=0
        )

    def update(self, loss):
        """Record one finished epoch whose loss was ``loss``."""
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.samples / max(now - self.last, 1e-9)
        self.last = now
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.5g}", samples_per_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(1)
        else:
            print(
                f"\repoch {self.done}/{self.total}  loss {loss:.5g}  {rate:,.0f} samples/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self):
        """Remove the bar (or end the line)."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done:
            print(file=sys.stderr)
