"""The optional progress bar of the stochastic solvers (see fastmlp.set_config): epochs done,
and within a long epoch the samples done, the loss so far and samples/s, redrawn at most every
``REDRAW_SECONDS``."""

import sys
import time

from fastmlp._config import get_config

REDRAW_SECONDS = 0.5


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
        self.last = time.perf_counter()  # when the current epoch began
        self.drawn = self.last  # when the bar was last redrawn
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

    def within_epoch(self, samples_done, loss_sum):
        """Record progress inside the current epoch: ``samples_done`` of it so far, whose
        batch losses times batch lengths sum to ``loss_sum``."""
        now = time.perf_counter()
        if not self.enabled or now - self.drawn < REDRAW_SECONDS or samples_done >= self.samples:
            return  # a finished epoch is drawn by update()
        self.drawn = now
        rate = samples_done / max(now - self.last, 1e-9)
        loss = loss_sum / max(samples_done, 1)
        status = f"{samples_done:,}/{self.samples:,} samples"
        if self.bar is not None:
            self.bar.set_postfix(
                epoch=status, loss=f"{loss:.5g}", samples_per_s=f"{rate:,.0f}", refresh=False
            )
            self.bar.refresh()
        else:
            line = f"epoch {self.done + 1}/{self.total}  {status}  loss {loss:.5g}"
            line += f"  {rate:,.0f} samples/s"
            print(
                f"\r{line:<79}",  # padded: it overwrites a longer line
                end="",
                file=sys.stderr,
                flush=True,
            )

    def update(self, loss):
        """Record one finished epoch whose loss was ``loss``."""
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.samples / max(now - self.last, 1e-9)
        self.last = self.drawn = now
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.5g}", samples_per_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(1)
        else:
            line = f"epoch {self.done}/{self.total}  loss {loss:.5g}  {rate:,.0f} samples/s"
            print(
                f"\r{line:<79}",
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
