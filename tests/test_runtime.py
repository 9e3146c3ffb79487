"""The persistent compilation cache that training runs turn on (GPU/TPU only)."""
import jax

from stylegan_jax import runtime


def test_compilation_cache_stays_off_on_the_cpu_backend():
    configured = jax.config.jax_compilation_cache_dir
    assert jax.default_backend() == "cpu"
    assert runtime.enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir == configured
