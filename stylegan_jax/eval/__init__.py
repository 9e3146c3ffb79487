"""Evaluation metrics of the StyleGAN papers (FID, KID, IS, PR, PPL, EQ-T/EQ-R) and their feature networks."""
from stylegan_jax.eval.feature_nets import (FeatureNet, fid_features, inception_pool3, inception_probabilities,
                                            vgg16_fc2)
from stylegan_jax.eval.fid import frechet_distance, mean_cov
from stylegan_jax.eval.inception_score import inception_score
from stylegan_jax.eval.inputs import Generator, RealImages
from stylegan_jax.eval.kid import kernel_distance
from stylegan_jax.eval.metrics import METRICS, MetricOptions, append_jsonl, run_metrics
from stylegan_jax.eval.precision_recall import precision_recall
from stylegan_jax.perceptual.lpips import lpips_distance, lpips_vgg16
from stylegan_jax.perceptual.weight_files import MissingWeightsError

__all__ = [
    "FeatureNet", "fid_features", "inception_pool3", "inception_probabilities", "vgg16_fc2", "frechet_distance",
    "mean_cov", "inception_score", "kernel_distance", "lpips_distance", "lpips_vgg16", "METRICS", "MetricOptions",
    "append_jsonl", "run_metrics", "precision_recall", "Generator", "RealImages", "MissingWeightsError",
]
