"""Trains StyleGAN2/3: python -m stylegan_jax.main --config=configs/ffhq.py --workdir=DIR."""
import pickle
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, sample grids and metrics.")
config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for multi-host GPU/CPU runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-host run.")
flags.DEFINE_integer("process_id", None, "Index of this process in a multi-host run.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    from stylegan_jax.training.runtime import initialize_runtime

    initialize_runtime(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    from stylegan_jax.training.loop import TrainingDiverged, train_and_evaluate

    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (ValueError, OSError, pickle.UnpicklingError, TrainingDiverged) as e:  # bad input, divergence: one line
        sys.exit("error: " + " ".join(str(e).split()))


if __name__ == "__main__":
    logging.set_verbosity(logging.WARNING)
    app.run(main)
