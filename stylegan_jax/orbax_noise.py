"""Keeps Orbax's failure noise off stderr, where the one-line error of a failed read or save belongs.

A checkpoint read or write that fails (a damaged file, a full disk) reaches the caller as an
exception. Around it, Orbax logs the same error with a traceback from each of its background
threads (and warns about the waits it caused); the asyncio loops it abandons report futures whose
exception nobody retrieved; and tensorstore, finishing the other pending reads and writes after
Orbax has closed its event loop, makes Python print an unraisable 'RuntimeError: Event loop is
closed' traceback for each of them (hundreds for a full disk). This program runs no asyncio code of
its own, so those asyncio reports are always Orbax's.
"""
from __future__ import annotations

import logging
import os
import sys

_ORBAX_SOURCE = f"{os.sep}orbax{os.sep}"


def _closed_loop_wakeup(unraisable) -> bool:
    return (unraisable.object is None and isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed")


def _from_orbax(record: logging.LogRecord) -> bool:
    return _ORBAX_SOURCE in record.pathname


def _abandoned_future(record: logging.LogRecord) -> bool:
    # asyncio's report is "Future exception was never retrieved", then a "future: <...>" line.
    return str(record.msg).partition("\n")[0].endswith("exception was never retrieved")


def silence() -> None:
    """Drops, from now on (installed once), Orbax's log records, abandoned-future reports and closed-loop wake-ups."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_wakeups", False):
        return

    def hook(unraisable):
        if not _closed_loop_wakeup(unraisable):
            previous(unraisable)

    hook.drops_closed_loop_wakeups = True
    sys.unraisablehook = hook
    logging.getLogger("absl").addFilter(lambda record: not _from_orbax(record))
    logging.getLogger("asyncio").addFilter(lambda record: not _abandoned_future(record))
