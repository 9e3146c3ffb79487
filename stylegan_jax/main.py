"""Trains StyleGAN2/3.

    python -m stylegan_jax.main --config=configs/ffhq.py --workdir=DIR [--config.KEY=VALUE ...]

--config.KEY=VALUE overrides one key of the config, e.g. --config.batch_size=32,
--config.model.channel_max=256 or --config.resume=network-snapshot.pkl.
"""
import pickle
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, sample grids and metrics.")
config_flags.DEFINE_config_file("config", None, "Training configuration file; override its keys with "
                                "--config.KEY=VALUE (e.g. --config.batch_size=32).", lock_config=True)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for multi-host GPU/CPU runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-host run.")
flags.DEFINE_integer("process_id", None, "Index of this process in a multi-host run.")
flags.mark_flags_as_required(["config", "workdir"])


def _one_line(error: BaseException) -> str:
    # ml_collections wraps a KeyError (whose str is a repr) in an AttributeError: show the innermost message.
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    if isinstance(error, KeyError):
        text = f"unknown config key {text}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def parse_flags(argv: list[str]) -> list[str]:
    """Parses the flags; a bad flag or config override is one line on stderr and exit code 2."""
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    del argv
    from stylegan_jax.runtime import enable_compilation_cache, initialize_runtime

    initialize_runtime(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    enable_compilation_cache()
    from stylegan_jax.training.loop import TrainingDiverged, train_and_evaluate

    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (ValueError, OSError, pickle.UnpicklingError, TrainingDiverged) as e:  # bad input, divergence: one line
        sys.exit(f"error: {_one_line(e)}")


if __name__ == "__main__":
    logging.set_verbosity(logging.WARNING)
    app.run(main, flags_parser=parse_flags)
