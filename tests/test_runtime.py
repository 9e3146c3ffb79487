"""The persistent compilation cache that training runs turn on."""
import jax

from stylegan_jax import runtime


def test_compilation_cache_defaults_to_the_user_cache_and_keeps_a_configured_one():
    configured = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", "/tmp/elsewhere")
        assert runtime.enable_compilation_cache() == "/tmp/elsewhere"
        jax.config.update("jax_compilation_cache_dir", None)
        assert runtime.enable_compilation_cache() == runtime.DEFAULT_COMPILATION_CACHE
        assert jax.config.jax_compilation_cache_dir == runtime.DEFAULT_COMPILATION_CACHE
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)
