"""FID sanity measurement on real faces: two disjoint halves of a dataset, then corrupted copies.

    nice -n 10 python benchmarks/bench_eval.py --data=../shared/datasets/utkface --per-half=1000

Loads a seeded random subset of the image folder (resized to --res with PIL LANCZOS), measures the
Inception feature-extraction throughput, then prints FID(A, B) for disjoint halves A and B and
FID(A, corrupt(B)) for Gaussian blur and Gaussian noise at several strengths (FID should grow with
the corruption), with times and the process's peak memory. Nothing is written to disk.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import PIL.Image
import PIL.ImageFilter

from stylegan_jax.eval import frechet_distance, inception_pool3, mean_cov
from stylegan_jax.eval.inputs import list_images


def load_images(paths: list, res: int) -> np.ndarray:
    """uint8 [N, res, res, 3] of the given files, LANCZOS-resized."""
    out = np.empty((len(paths), res, res, 3), np.uint8)
    for i, path in enumerate(paths):
        with PIL.Image.open(path) as image:
            out[i] = np.asarray(image.convert("RGB").resize((res, res), PIL.Image.LANCZOS))
    return out


def blur(images: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of every image, radius in pixels."""
    return np.stack([np.asarray(PIL.Image.fromarray(x).filter(PIL.ImageFilter.GaussianBlur(radius)))
                     for x in images])


def noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of std `sigma` (in 0..255 units), clipped back to uint8."""
    noisy = images + np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Runs the measurement and prints its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/datasets/utkface")
    parser.add_argument("--per-half", type=int, default=1000)
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--blur", default="0.5,1,2", help="Gaussian blur radii (pixels)")
    parser.add_argument("--noise", default="8,16,32", help="Gaussian noise std devs (0..255 units)")
    args = parser.parse_args()

    start = time.time()
    paths = list_images(args.data)
    chosen = np.random.default_rng(0).permutation(len(paths))[:2 * args.per_half]
    images = load_images([paths[i] for i in chosen], args.res)
    half_a, half_b = images[:args.per_half], images[args.per_half:]
    print(f"loaded {len(images)} of {len(paths)} images at {args.res}x{args.res} in {time.time() - start:.1f} s")

    net = inception_pool3(batch_size=args.batch)
    net(half_a[:args.batch])  # compile
    t = time.time()
    net(half_a[:4 * args.batch])
    print(f"feature extraction: {4 * args.batch / (time.time() - t):.2f} images/s "
          f"(batch {args.batch}, resize {args.res}->299 included)")

    def stats(x: np.ndarray) -> tuple:
        return mean_cov(net(x))

    t = time.time()
    ref = stats(half_a)
    print(f"reference half: {time.time() - t:.1f} s")
    cases = [("B (clean)", half_b)]
    cases += [(f"B blur r={r}", blur(half_b, float(r))) for r in args.blur.split(",")]
    cases += [(f"B noise s={s}", noise(half_b, float(s))) for s in args.noise.split(",")]
    print(f"\n| compared with A ({args.per_half} imgs) | FID | features s | sqrtm+FID s | peak MiB |")
    print("|---|---|---|---|---|")
    for name, x in cases:
        t = time.time()
        mu, sigma = stats(x)
        t_feat = time.time() - t
        t = time.time()
        fid = frechet_distance(mu, sigma, *ref)
        print(f"| {name} | {fid:.2f} | {t_feat:.0f} | {time.time() - t:.0f} | {peak_memory_mib():.0f} |", flush=True)
    print(f"\ntotal {time.time() - start:.0f} s, peak memory {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
