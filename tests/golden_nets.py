"""Loading of the golden official networks of ../shared/golden into our modules."""
from __future__ import annotations

import json

import numpy as np

from conftest import load_golden
from stylegan_jax.convert import from_official_state_dict

NON_STATE_PREFIXES = ("meta", "input", "output", "grad", "grad_param", "init")


def official_state_dict(data) -> dict[str, np.ndarray]:
    """The official parameters and buffers stored in a golden network file."""
    return {k: data[k] for k in data.keys() if k.split("/")[0] not in NON_STATE_PREFIXES}


def load_golden_network(name: str):
    """Returns (data, module, variables) for a golden network file such as 'sg2_64_G.npz'."""
    data = load_golden(name)
    module, variables = from_official_state_dict(
        str(data["meta/class_name"]), json.loads(str(data["meta/init_kwargs"])), official_state_dict(data))
    return data, module, variables


def nchw(a) -> np.ndarray:
    """NHWC -> NCHW, to compare with the official layout."""
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


# Parameter gradients of sum(img * cotangent) cancel heavily: measured against a float64
# evaluation of the same network (sg2_64_G), the official float32 gradients are off by 1.7e-4 as
# a whole and by up to 6.1e-4 per tensor (scalar noise strengths, some biases), ours by 1.1e-4
# and 3.0e-4. The tolerances below sit just above what float32 can promise here.
PER_TENSOR_GRAD_TOL = 1e-3
WHOLE_GRAD_TOL = 3e-4


def assert_param_gradients_match(grad_params, data) -> None:
    """Compares our parameter gradients with the golden `grad_param/*` entries."""
    from conftest import relative_error
    from stylegan_jax.convert.state_dict import flatten_variables

    ours = {name: leaf for name, (_, _, leaf) in flatten_variables({"params": grad_params}).items()}
    expected = {k[len("grad_param/"):]: data[k] for k in data.keys() if k.startswith("grad_param/")}
    assert set(ours) == set(expected)
    for name in ours:
        assert relative_error(ours[name], expected[name]) < PER_TENSOR_GRAD_TOL, name
    names = sorted(ours)
    flat = lambda tree: np.concatenate([np.ravel(np.asarray(tree[n], np.float64)) for n in names])
    assert relative_error(flat(ours), flat(expected)) < WHOLE_GRAD_TOL
