"""The official adaptive-p rule of ADA, as a pure function."""
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.training.ada import adjust_p


@pytest.mark.parametrize("sign_sum, count, p, expected", [
    (64.0, 64.0, 0.0, 0.001024),        # every real logit positive: D overfits, p goes up by 32*4/125000
    (0.0, 64.0, 0.5, 0.5 - 0.001024),   # mean sign 0 < target: p goes down
    (0.0, 64.0, 0.0005, 0.0),           # never below 0
    (38.4, 64.0, 0.25, 0.25),           # mean sign exactly the target 0.6: sign(0) = 0, p stays
    (36.0, 60.0, 0.25, 0.25),           # 36/60 = 0.6 exactly in float32 as well
    (37.0, 60.0, 0.25, 0.25 + 0.001024),
])
def test_adjust_p_follows_the_official_rule(sign_sum, count, p, expected):
    new = adjust_p(jnp.float32(p), jnp.float32(sign_sum), jnp.float32(count), target=0.6, batch_size=32,
                   interval=4, kimg=125.0)
    assert new.dtype == jnp.float32
    np.testing.assert_allclose(float(new), expected, rtol=1e-6, atol=1e-9)


def test_p_has_no_upper_clamp():
    # Gates saturate once multiplier * p >= 1; the official loop never clips p from above.
    assert float(adjust_p(jnp.float32(0.9999), jnp.float32(1.0), jnp.float32(1.0), 0.6, 32, 4, 0.1)) > 1
