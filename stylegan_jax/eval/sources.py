"""What a metric evaluates: the real images of a dataset and a generator given as callables."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator

import jax
import numpy as np

from stylegan_jax.eval.images import check_uint8_nhwc


@dataclasses.dataclass
class RealImages:
    """A dataset's real images: uint8 NHWC, as one array or a zero-argument callable yielding batches.

    `identity` names the dataset in cache keys (e.g. 'utkface-64-v1'): change it when the data changes.
    `resolution` and `count` (the number of images, for progress reports) are read from an array;
    give them when `images` is a callable (`count` may stay None: unknown). `labels` [N, c_dim] are
    the dataset's labels, drawn at random for conditional generators. `xflip` appends mirrored copies
    (honoured by the legacy metrics only; the *_full metrics always use the data as is).
    """

    identity: str
    images: np.ndarray | Callable[[], Iterable[np.ndarray]]
    resolution: int | None = None
    labels: np.ndarray | None = None
    xflip: bool = False
    batch_size: int = 64
    count: int | None = None

    def __post_init__(self):
        if not self.identity:
            raise ValueError("RealImages needs a non-empty dataset identity (it keys the statistics cache)")
        if isinstance(self.images, np.ndarray):
            self.images = check_uint8_nhwc(self.images, f"real images of {self.identity!r}")
            self.resolution, self.count = self.images.shape[1], len(self.images)
        elif not callable(self.images):
            raise TypeError("RealImages.images must be a uint8 NHWC array or a zero-argument callable returning "
                            f"an iterable of batches (it is read once per statistic), got {type(self.images)}")
        elif self.resolution is None:
            raise ValueError("RealImages needs `resolution` when images come from a callable")

    def batches(self, xflip: bool) -> Iterator[np.ndarray]:
        """The images in batches, then (if xflip) the same images mirrored left-right."""
        for flip in (False, True) if xflip else (False,):
            if isinstance(self.images, np.ndarray):
                stream = (self.images[i:i + self.batch_size] for i in range(0, len(self.images), self.batch_size))
            else:
                stream = self.images()
            for batch in stream:
                batch = check_uint8_nhwc(batch, f"a batch of real images of {self.identity!r}")
                yield batch[:, :, ::-1] if flip else batch


@dataclasses.dataclass(frozen=True)
class Generator:
    """A generator as callables, all producing float NHWC images of about [-1, 1] (psi = 1).

    `generate(z, c)` serves FID/KID/IS/PR. PPL also needs `mapping(z, c) -> ws` and
    `synthesis(ws, noise_key) -> images`, where noise_key re-draws the constant noise inputs, shared
    by the whole batch (both ends of each path see the same noise). The equivariance metrics need
    `render(z, c, transform)`, transform being the 3x3 matrix of StyleGAN3's synthesis input.
    """

    generate: Callable[[jax.Array, jax.Array], jax.Array]
    z_dim: int
    c_dim: int = 0
    mapping: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    synthesis: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    render: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None
