"""The shared leaf-shape comparison behind the weight and resume errors."""
import numpy as np
import pytest

from stylegan_jax.tree_shapes import shape_mismatches


def test_shape_mismatches_name_missing_extra_and_reshaped_leaves():
    ours = {"a": {"w": np.zeros((2, 3))}, "b": np.zeros(4), "extra": np.zeros(1)}
    theirs = {"a": {"w": np.zeros((3, 2))}, "b": np.zeros(4), "c": np.zeros(5)}
    assert shape_mismatches(ours, theirs) == ["['a']['w'] (2, 3) vs (3, 2)", "['c'] missing vs (5,)",
                                              "['extra'] (1,) vs missing"]
    assert shape_mismatches(theirs, theirs) == []


def test_feature_network_weights_of_the_wrong_layout_are_named():
    from stylegan_jax.perceptual.inception import _check_param_shapes
    from stylegan_jax.perceptual.lpips import _check_params

    inception_message = r"Inception weights do not fit .*188 tensor\(s\) differ.*\['conv'\]\['bias'\] missing vs \(32,\)"
    with pytest.raises(ValueError, match=inception_message):
        _check_param_shapes({})
    with pytest.raises(ValueError, match=r"weights\.pkl: LPIPS weights do not fit .* missing vs"):
        _check_params({}, "weights.pkl")
