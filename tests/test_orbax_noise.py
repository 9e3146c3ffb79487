"""orbax_noise drops Orbax's abandoned-future reports, in the form asyncio logs them, and nothing else."""
import logging

from stylegan_jax import orbax_noise


def _passes(logger: str, message: str) -> bool:
    record = logging.LogRecord(logger, logging.ERROR, "/x/asyncio/base_events.py", 1, message, None, None)
    return all(f.filter(record) if hasattr(f, "filter") else f(record) for f in logging.getLogger(logger).filters)


def test_abandoned_future_reports_are_dropped_and_other_errors_kept():
    orbax_noise.silence()
    report = "Future exception was never retrieved\nfuture: <Future finished exception=ValueError('RESOURCE_EXHAUSTED')>"
    assert not _passes("asyncio", report)
    assert not _passes("asyncio", "Task exception was never retrieved")
    assert _passes("asyncio", "Unclosed client session")
    assert _passes("asyncio", "something failed\nFuture exception was never retrieved")
