"""Test set-up: 8 simulated CPU devices and access to the golden files in ../shared."""
import os

# LLVM at -O0: the suite is bound by XLA:CPU compile time, which this halves; the tests' small shapes run
# fast enough unoptimised. Results differ from -O3's in the last bits, so every process of the suite
# (subprocesses too: xla_flags) compiles alike. Users' runs keep XLA's defaults.
SUITE_XLA_FLAGS = "--xla_backend_optimization_level=0"


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a process of the suite with `devices` simulated CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {SUITE_XLA_FLAGS}"


os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No persistent compilation cache: the suite's runs write and read the same executables concurrently.

import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "golden"


def relative_error(actual, expected) -> float:
    """||actual - expected|| / ||expected|| in float64."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    denom = np.linalg.norm(expected)
    return float(np.linalg.norm(actual - expected) / (denom if denom > 0 else 1.0))


def load_golden(name: str):
    """Loads ../shared/golden/<name>, skipping the test with a reason when it is absent."""
    path = GOLDEN / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the golden files live in ../shared (always present in CI)")
    return np.load(path, allow_pickle=False)


@pytest.fixture(autouse=True, scope="module")
def release_compiled_executables():
    """Drops every module's compiled executables when it ends.

    Each XLA:CPU executable keeps its own memory mappings; one pytest process that keeps all of the
    suite's executables passes the kernel's limit of 65,530 mappings and segfaults in the compiler.
    """
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture(params=["cpu", "generic"])
def conv_path(request):
    """Runs the test on both convolution paths: the CPU rewrites and the accelerators' plain XLA forms."""
    from stylegan_jax.ops.conv2d import conv_path as forced_conv_path
    from stylegan_jax.runtime import on_cpu_backend

    if request.param == "cpu" and on_cpu_backend():
        # The default path here: unforced, the test shares its compiled functions with every other test.
        yield request.param
        return
    with forced_conv_path(request.param):
        yield request.param


@pytest.fixture(scope="session")
def tiny_straight_run(tmp_path_factory):
    """The final state of an uninterrupted in-process run of tests/tiny_config.py on 8 devices."""
    import tiny_config
    from stylegan_jax.training.loop import train_and_evaluate

    return train_and_evaluate(tiny_config.get_config(), str(tmp_path_factory.mktemp("straight")))
