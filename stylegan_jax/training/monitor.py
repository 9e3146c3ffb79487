"""Progress lines, a log file, TensorBoard scalars and a metrics file for a training run.

Only process 0 writes; other processes keep quiet.
"""
from __future__ import annotations

import json
import resource
import time
from typing import Any, Mapping

import jax
import numpy as np

from stylegan_jax import fileio


def _memory_gib() -> tuple[float, float]:
    """(peak host RSS, peak device bytes in use where the backend reports it) in GiB."""
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    stats = jax.local_devices()[0].memory_stats() or {}
    return host, stats.get("peak_bytes_in_use", 0) / 2 ** 30


class Monitor:
    """Writes the periodic progress line, TensorBoard scalars and metric results of a run."""

    def __init__(self, workdir: str):
        self.active = jax.process_index() == 0
        self.workdir = workdir
        self._writer = None
        self._log = fileio.open_file(fileio.join(workdir, "log.txt"), "a") if self.active else None
        self._start_time = self._tick_time = time.time()
        self._tick_nimg = 0

    def _summary_writer(self):
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(fileio.join(self.workdir, "tensorboard"))
        return self._writer

    def log(self, line: str) -> None:
        """Prints a line and appends it to log.txt."""
        if self.active:
            print(line, flush=True)
            self.record(line)

    def record(self, text: str) -> None:
        """Appends text to log.txt only (e.g. the config, too long for the console)."""
        if self.active:
            self._log.write(text + "\n")
            self._log.flush()

    def start(self, nimg: int) -> None:
        """Marks the start of timing at `nimg` images."""
        self._tick_time, self._tick_nimg = time.time(), nimg

    def tick(self, nimg: int, metrics: Mapping[str, Any], skipped: int) -> None:
        """Logs kimg, sec/kimg, images/s, losses, regularisers and memory; writes TensorBoard scalars."""
        if not self.active:
            return
        now = time.time()
        shown = max(nimg - self._tick_nimg, 1)
        sec_per_kimg = (now - self._tick_time) / shown * 1000
        values = {k: float(np.asarray(v)) for k, v in metrics.items() if not k.startswith("finite/")}
        host, device = _memory_gib()
        values.update({"timing/sec_per_kimg": sec_per_kimg, "timing/images_per_sec": shown / (now - self._tick_time),
                       "progress/skipped_steps": skipped, "memory/host_peak_gib": host,
                       "memory/device_peak_gib": device})
        fields = [f"kimg {nimg / 1e3:<9.3f}", f"time {now - self._start_time:<7.0f}s",
                  f"sec/kimg {sec_per_kimg:<8.2f}", f"img/s {values['timing/images_per_sec']:<7.1f}"]
        fields += [f"{k.split('/')[-1]} {v:<8.4f}" for k, v in sorted(values.items())
                   if k.startswith(("loss/", "scores/", "pl_mean", "augment/", "progress/lod", "rotation/"))]
        fields += [f"skipped {skipped}", f"host {host:.2f}GiB", f"device {device:.2f}GiB"]
        self.log("  ".join(fields))
        with self._summary_writer().as_default():
            import tensorflow as tf

            for key, value in values.items():
                tf.summary.scalar(key, value, step=nimg // 1000 if nimg >= 1000 else 0)
            self._writer.flush()
        self._tick_time, self._tick_nimg = now, nimg

    def write_metrics(self, results: Mapping[str, Any], nimg: int) -> None:
        """Appends metric results as one JSON line to metrics.jsonl and logs them."""
        if not self.active:
            return
        record = {"kimg": nimg / 1e3, **results}
        with fileio.open_file(fileio.join(self.workdir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log("metrics " + json.dumps(record))

    def close(self) -> None:
        """Flushes and closes the log and TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
        if self._log is not None:
            self._log.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl, in order: {'kimg': ..., metric name: {result: value}}."""
    path = fileio.join(workdir, "metrics.jsonl")
    if not fileio.exists(path):
        raise ValueError(f"{workdir} has no metrics.jsonl (run metrics with --config.metrics or evaluate)")
    with fileio.open_file(path, "r") as f:
        return [json.loads(line) for line in f if line.strip()]
