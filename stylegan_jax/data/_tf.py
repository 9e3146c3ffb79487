"""TensorFlow, imported on first use and kept off the accelerators (JAX owns them)."""
from __future__ import annotations

import functools
import logging
import os
from types import ModuleType

logger = logging.getLogger(__name__)


@functools.cache
def tensorflow() -> ModuleType:
    """The `tensorflow` module with every GPU hidden from it, so that TF takes no accelerator memory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as e:  # TF's devices were initialised before this module was used
        logger.warning("could not hide GPUs from TensorFlow: %s", e)
    return tf
