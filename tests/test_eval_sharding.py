"""Metric-side sharding: ShardedBatchMap with several batched inputs, and generation split over all 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.eval.inputs import _redraw_noise, generator_source, latents_and_labels
from stylegan_jax.eval.sharding import ShardedBatchMap
from stylegan_jax.sampling.render import input_transform
from test_sampling_nets import reference, sg2, sg3


def _is_split_over_all_devices(sharding) -> bool:
    return len(sharding.device_set) == jax.device_count() == 8 and not sharding.is_fully_replicated


@pytest.mark.parametrize("rows", [3, 13, 16])
def test_map_of_two_batched_inputs_pads_and_splits_over_all_devices(rows):
    seen = []

    def fn(params, x, y):
        jax.debug.inspect_array_sharding(x, callback=seen.append)
        return x * params["scale"] + y.sum(axis=1)

    rng = np.random.default_rng(rows)
    x, y = rng.normal(size=(rows,)).astype(np.float32), rng.normal(size=(rows, 4)).astype(np.float32)
    batch_map = ShardedBatchMap(fn, {"scale": np.float32(3)}, batch_size=8)
    np.testing.assert_allclose(batch_map(x, y), x * 3 + y.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(batch_map(x, y, params={"scale": np.float32(-1)}), -x + y.sum(axis=1), rtol=1e-6)
    assert seen and all(_is_split_over_all_devices(s) for s in seen)


def test_map_rejects_empty_and_mismatched_batches():
    batch_map = ShardedBatchMap(lambda p, x, y: x + y, None, batch_size=8)
    with pytest.raises(ValueError, match="empty batch"):
        batch_map(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="differ in batch size"):
        batch_map(np.zeros((3, 2)), np.zeros((4, 2)))


class ShardingProbe:
    """A generator that records how the batched input of every traced `apply` is sharded."""

    def __init__(self, G):
        self.G, self.z_dim, self.c_dim, self.seen = G, G.z_dim, G.c_dim, []

    def mapping(self, z, c):  # only its presence is read (a generator with a w space)
        raise NotImplementedError

    def synthesis(self, ws, transform=None):  # only its signature is read (it takes a transform)
        raise NotImplementedError

    def apply(self, variables, x, *args, **kwargs):
        jax.debug.inspect_array_sharding(x, callback=self.seen.append)
        return self.G.apply(variables, x, *args, **kwargs)


def _assert_close(actual, expected):
    """Equal up to float32 rounding: a per-device batch compiles to other loops than the whole batch."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [5, 13])
@pytest.mark.parametrize("net", [sg2, sg3])
def test_sharded_generation_equals_unsharded_apply(net, rows):
    G, variables = net()
    gen = generator_source(G, variables, batch_size=8)
    z, c = latents_and_labels(jax.random.key(rows), G.z_dim, G.c_dim, None, rows)
    _assert_close(gen.generate(z, c), reference(G, variables, z, c, noise_mode="const"))
    ws = gen.mapping(z, c)
    _assert_close(ws, reference(G, variables, z, c, method="mapping"))
    key = jax.random.key(7)
    expected = jax.jit(lambda v, ws: G.apply(_redraw_noise(v, key), ws, noise_mode="const", method="synthesis"))(
        variables, ws)
    images = gen.synthesis(ws, key)
    _assert_close(images, expected)
    redrawn = np.abs(gen.synthesis(ws, jax.random.key(8)) - images).max()
    assert redrawn > 1e-3 if net is sg2 else redrawn == 0  # the key re-draws StyleGAN2's noise (SG3 has none)
    if net is sg3:
        transform = jnp.asarray(input_transform((0.1, -0.05), 10.0))
        expected = reference(G, variables, z, c, noise_mode="const", transform=transform)
        _assert_close(gen.render(z, c, transform), expected)
    else:
        assert gen.render is None


def test_every_generator_callable_spans_all_devices():
    G, variables = sg3()
    probe = ShardingProbe(G)
    gen = generator_source(probe, variables, batch_size=8)
    z, c = latents_and_labels(jax.random.key(0), G.z_dim, 0, None, 5)
    gen.generate(z, c)
    gen.synthesis(gen.mapping(z, c), jax.random.key(1))
    gen.render(z, c, jnp.eye(3))
    assert len(probe.seen) == 4 and all(_is_split_over_all_devices(s) for s in probe.seen)
