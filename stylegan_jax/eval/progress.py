"""Progress lines of a long feature computation: images done / total, rate and ETA."""
from __future__ import annotations

import time
from typing import Callable

# progress(what, done, total): `done` of `total` images (None: unknown) of the stream `what` have their features.
Progress = Callable[[str, int, int | None], None]


class ProgressLines:
    """A Progress that writes 'PREFIX WHAT: DONE/TOTAL images, RATE img/s, ETA S s' lines.

    A line is written for the first report of a stream (0 images, before any work), then at most
    every `interval` seconds, and for its last image; the rate counts from the first report.
    """

    def __init__(self, prefix: str = "", write: Callable[[str], None] = print, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.prefix, self.write, self.interval, self.clock = prefix, write, interval, clock
        self._what: str | None = None
        self._start = self._last = 0.0
        self._start_done = 0

    def __call__(self, what: str, done: int, total: int | None) -> None:
        now = self.clock()
        if what != self._what:
            self._what, self._start, self._last, self._start_done = what, now, now, done
        elif now - self._last < self.interval and done != total:
            return
        else:
            self._last = now
        elapsed = now - self._start
        rate = (done - self._start_done) / elapsed if elapsed > 0 else None
        fields = [f"{done}/{total if total is not None else '?'} images"]
        if rate:
            fields.append(f"{rate:.1f} img/s")
            if total is not None and done < total:
                fields.append(f"ETA {(total - done) / rate:.0f} s")
        self.write(f"{self.prefix}{what}: {', '.join(fields)}")


def stream_report(progress: Progress | None, what: str, total: int | None) -> Callable[[int], None] | None:
    """`progress` narrowed to the stream `what` of `total` images: report(done), or None without progress."""
    return None if progress is None else lambda done: progress(what, done, total)
