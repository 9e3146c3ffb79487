#!/usr/bin/env bash
# Runs bench_train.py's standard rows on the accelerator present (the small configs on a CPU) and prints
# one Markdown table, within DEVICE_CHECK_SECONDS (default 470, under 8 minutes): rows are printed as
# they finish, cheapest first, and a row the time limit cuts off is left out. Extra arguments go to
# bench_train.py, e.g. --compute-dtype bfloat16 --peak-tflops 197.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
if "$python" -c "import jax, sys; sys.exit(jax.default_backend() == 'cpu')"; then
  configs=quickstart,sg2_256,sg3t_256,sg3r_256,r3gan_cifar10,sg2_1024,sg3t_1024,sg3r_1024,r3gan_ffhq256
else
  configs=tiny,quickstart
fi
timeout "${DEVICE_CHECK_SECONDS:-470}" "$python" benchmarks/bench_train.py --configs "$configs" --runs 3 --periods 1 "$@"
status=$?
if [ "$status" -eq 124 ]; then
  echo "(time limit of ${DEVICE_CHECK_SECONDS:-470} s reached: the rows above are the ones that finished)"
  exit 0
fi
exit "$status"
