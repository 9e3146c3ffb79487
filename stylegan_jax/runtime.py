"""Process set-up before JAX is used, shared by every command line: joining a multi-process run and the
persistent compilation cache."""
from __future__ import annotations

import os

import jax

DEFAULT_COMPILATION_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "stylegan_jax", "jax")


def initialize_runtime(coordinator_address: str | None = None, num_processes: int | None = None,
                       process_id: int | None = None) -> None:
    """Joins a multi-process run when one is configured (flags, or automatically on Cloud TPU)."""
    explicit = coordinator_address is not None or (num_processes or 1) > 1
    on_tpu_pod = "TPU_WORKER_HOSTNAMES" in os.environ and "," in os.environ["TPU_WORKER_HOSTNAMES"]
    if explicit:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id)
    elif on_tpu_pod:
        jax.distributed.initialize()


def on_cpu_backend() -> bool:
    """Whether JAX computes on the XLA:CPU backend: the one query behind every CPU-only choice."""
    return jax.default_backend() == "cpu"


def enable_compilation_cache() -> str | None:
    """On GPU/TPU, turns on JAX's persistent compilation cache in $JAX_COMPILATION_CACHE_DIR, else
    DEFAULT_COMPILATION_CACHE, so that a resumed run loads its compiled steps; returns the directory.
    On the CPU backend it stays off (None): XLA:CPU crashed loading an executable another process cached."""
    if on_cpu_backend():
        return None
    directory = jax.config.jax_compilation_cache_dir or DEFAULT_COMPILATION_CACHE
    jax.config.update("jax_compilation_cache_dir", directory)
    return directory
