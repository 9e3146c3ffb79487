"""Metric formulas (FID, KID, IS, precision/recall, PPL math) against the official values in metrics.npz."""
import numpy as np
import pytest
from conftest import load_golden, relative_error

from stylegan_jax.eval import frechet_distance, inception_score, kernel_distance, mean_cov, precision_recall
from stylegan_jax.eval.feature_stats import FeatureAccumulator
from stylegan_jax.eval.ppl import slerp, trimmed_mean


@pytest.fixture(scope="module")
def golden():
    return load_golden("metrics.npz")


def test_fid_matches_golden(golden):
    mu_gen, sigma_gen = mean_cov(golden["fid/feats_gen"])
    mu_real, sigma_real = mean_cov(golden["fid/feats_real"])
    fid = frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
    assert isinstance(fid, float)
    assert abs(fid - golden["fid/value"]) / golden["fid/value"] < 1e-9


def test_covariance_is_divided_by_n_like_the_official_code():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    mu, sigma = mean_cov(x)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), atol=1e-12)


def test_streamed_stats_equal_one_shot_stats(golden):
    feats = golden["fid/feats_real"]
    acc = FeatureAccumulator(keep_rows=True, keep_moments=True, limit=650)
    for i in range(0, len(feats), 128):
        acc.add(feats[i:i + 128])
    assert acc.count == 650 and acc.full
    for a, b in zip(acc.mean_and_covariance(), mean_cov(feats[:650])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(acc.rows(), feats[:650])


def test_fid_is_zero_for_identical_statistics_and_rejects_mismatched_shapes(golden):
    mu, sigma = mean_cov(golden["fid/feats_real"])
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance(mu, sigma, mu[:3], sigma)


def test_kid_matches_golden(golden):
    kid = kernel_distance(golden["kid/feats_real"], golden["kid/feats_gen"], num_subsets=3, max_subset_size=1000,
                          rng=np.random.default_rng(0))
    assert abs(kid - golden["kid/value_full_subset"]) / golden["kid/value_full_subset"] < 1e-6


def test_inception_score_matches_golden(golden):
    mean, std = inception_score(golden["is/probs"], num_splits=10)
    assert relative_error([mean, std], golden["is/value"]) < 1e-6


def test_precision_recall_matches_golden(golden):
    for row_batch_size in (128, 1000):
        result = precision_recall(golden["pr/feats_real"], golden["pr/feats_gen"], nhood_size=3,
                                  row_batch_size=row_batch_size)
        np.testing.assert_allclose(result, golden["pr/value"], rtol=1e-7)


def test_slerp_matches_golden(golden):
    a, b, t = golden["ppl/slerp_a"], golden["ppl/slerp_b"], golden["ppl/slerp_t"]
    assert relative_error(slerp(a, b, t), golden["ppl/slerp_out"]) < 1e-6
    assert relative_error(slerp(a, b, t + 1e-4), golden["ppl/slerp_out_t_plus_eps"]) < 1e-6


def test_ppl_trimmed_mean_matches_golden(golden):
    dist = golden["ppl/dist"]
    value = trimmed_mean(dist)
    assert abs(value - golden["ppl/trimmed_mean"]) / golden["ppl/trimmed_mean"] < 1e-6
    assert value != pytest.approx(float(dist.mean()), rel=1e-4)  # the trimming matters on this data
