"""Progress lines of feature computations: their format and timing, and what run_metrics reports."""
import numpy as np

from stylegan_jax import eval as sg_eval
from stylegan_jax.eval.feature_stats import FeatureAccumulator, ProgressLines, accumulate_features
from stylegan_jax.eval.inputs import Generator, RealImages
from test_eval_registry import Z_DIM, _toy_generate, _toy_net


def test_progress_lines_show_images_rate_and_eta_at_most_every_interval():
    now, lines = [0.0], []
    progress = ProgressLines("fid1k_full ", lines.append, interval=10.0, clock=lambda: now[0])
    for t, done in ((0, 0), (5, 100), (12, 300), (13, 400), (24, 1000)):
        now[0] = t
        progress("generated images", done, 1000)
    now[0] = 30
    progress("real images", 0, None)
    now[0] = 40
    progress("real images", 50, None)
    assert lines == ["fid1k_full generated images: 0/1000 images",
                     "fid1k_full generated images: 300/1000 images, 25.0 img/s, ETA 28 s",
                     "fid1k_full generated images: 1000/1000 images, 41.7 img/s",
                     "fid1k_full real images: 0/? images",
                     "fid1k_full real images: 50/? images, 5.0 img/s"]


def test_accumulate_features_reports_the_count_before_and_after_each_batch():
    counts = []
    batches = (np.zeros((4, 2, 2, 3), np.uint8) for _ in range(5))
    acc = accumulate_features(lambda x: np.ones((len(x), 3)), batches, FeatureAccumulator(keep_rows=True, limit=10),
                              counts.append)
    assert counts == [0, 4, 8, 10] and acc.count == 10


def test_run_metrics_reports_real_and_generated_images_with_their_totals(tmp_path):
    reports = []
    real = RealImages("toy", np.random.default_rng(1).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8))
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), real, batch_size=64, cache_dir=tmp_path,
                                 feature_net=_toy_net(), progress=lambda *report: reports.append(report))
    sg_eval.run_metrics(["fid1k_full"], opts)
    assert [r for r in reports if r[0] == "real images"] == [("real images", n, 300) for n in (0, 64, 128, 192, 256,
                                                                                              300)]
    generated = [r for r in reports if r[0] == "generated images"]
    assert generated[0] == ("generated images", 0, 1000) and generated[-1] == ("generated images", 1000, 1000)
    assert len(generated) == 1 + 16  # 15 batches of 64 and the last 40
    reports.clear()
    sg_eval.run_metrics(["fid1k_full"], opts)  # the real statistics come from the cache: no real images to report
    assert {r[0] for r in reports} == {"generated images"}
