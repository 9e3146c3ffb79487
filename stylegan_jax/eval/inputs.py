"""What a metric evaluates: real images (an array, a dataset config or a folder of files) and a generator
as callables (one of ours, sharded over all devices), with the latents and labels it is sampled with."""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Callable, Iterable, Iterator, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image

from stylegan_jax.data.decoding import IMAGE_SUFFIXES
from stylegan_jax.eval.sharding import ShardedBatchMap
from stylegan_jax.networks import generation
from stylegan_jax.networks.layers import takes_transform
from stylegan_jax.sampling.prompts import PromptEncoder


# Real images: uint8 NHWC batches of an array, a dataset config or a folder of PNG/JPEG files.
def check_uint8_nhwc(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Returns `images` as uint8 NHWC with 3 channels (grayscale repeated), or raises naming the problem."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8 in [0, 255], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be NHWC with 1 or 3 channels, got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


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
    resolution: int | tuple[int, int] | None = None  # one side, or (height, width)
    labels: np.ndarray | None = None
    xflip: bool = False
    batch_size: int = 64
    count: int | None = None

    def __post_init__(self):
        if not self.identity:
            raise ValueError("RealImages needs a non-empty dataset identity (it keys the statistics cache)")
        if isinstance(self.images, np.ndarray):
            self.images = check_uint8_nhwc(self.images, f"real images of {self.identity!r}")
            height, width = self.images.shape[1:3]
            self.resolution = height if height == width else (height, width)
            self.count = len(self.images)
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


def dataset_source(dataset_cfg, batch_size: int = 64) -> RealImages:
    """All readable images of a dataset config once, in order, with its labels (a captioned dataset's: the
    captions' CLIP token ids) and identity."""
    from stylegan_jax.data import iterate_images, open_dataset

    tokenize = None
    if dataset_cfg.get("captions"):  # labels: the captions' CLIP token ids
        from stylegan_jax.perceptual.clip_tokenizer import tokenize
    info = open_dataset(dataset_cfg, seed=0, batch_size=1, tokenize=tokenize).info
    labels = None
    if info.c_dim > 0:
        labels = np.concatenate([b["label"] for b in iterate_images(dataset_cfg, batch_size, tokenize)])
    return RealImages(identity=info.identity,
                      images=lambda: (b["image"] for b in iterate_images(dataset_cfg, batch_size, tokenize)),
                      resolution=info.resolution, labels=labels, xflip=info.xflip, batch_size=batch_size,
                      count=info.num_images)


class ImageFolderError(ValueError):
    """A folder of images cannot be used: missing, empty, or holding an unreadable image."""


GRID_FILE = "grid.png"  # the overview that `generate --grid` writes next to the samples


def list_images(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Sorted paths of the PNG/JPEG files under `folder`, at any depth, except the grid.png of `generate --grid`."""
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise ImageFolderError(f"image folder {str(root)!r} does not exist")
    paths = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.name != GRID_FILE and p.is_file())
    if not paths:
        raise ImageFolderError(f"no PNG/JPEG images found under {str(root)!r}")
    return paths


def _read_rgb(path: pathlib.Path) -> np.ndarray:
    try:
        with PIL.Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError) as e:
        raise ImageFolderError(f"cannot read image {str(path)!r}: {e}") from None


def image_batches(paths: list[pathlib.Path], batch_size: int) -> Iterator[np.ndarray]:
    """uint8 [B, H, W, 3] batches of the images in order; a batch ends early where the image size changes."""
    batch: list[np.ndarray] = []
    for path in paths:
        image = _read_rgb(path)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield np.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield np.stack(batch)


# The generator: callables producing float NHWC images of about [-1, 1], and the latents it is fed.
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


def _redraw_noise(variables: Mapping[str, Any], key: jax.Array) -> dict:
    """Replaces every constant-noise buffer with fresh N(0, 1) noise (as the official PPL does)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(key, max(len(leaves), 1))
    new = [jax.random.normal(k, x.shape, x.dtype) if path[-1].key == "noise_const" else x
           for k, (path, x) in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, new)


def generator_source(G: nn.Module, variables: Mapping[str, Any], batch_size: int = 64,
                     prompts: PromptEncoder | None = None) -> Generator:
    """The callables the metrics need, from one of our generators (const noise, psi = 1).

    Each runs jitted and sharded on the batch axis over all devices (chunks of at most `batch_size`).
    A text-conditional (StyleGAN-T) generator takes `prompts`, the CLIP text tower it trained with: its
    labels are then a captioned dataset's token ids, embedded on the way in.
    """
    def sharded(fn: Callable, params: Any) -> ShardedBatchMap:
        return ShardedBatchMap(fn, params, batch_size)

    if prompts is None:
        c_dim, text, embed = G.c_dim, None, lambda _, c: c
    else:
        c_dim, text, embed = prompts.context_length, prompts.params, prompts.embed_tokens
    generate = sharded(lambda v_t, z, c: generation.generate(G, v_t[0], z, embed(v_t[1], c)), (variables, text))
    if not generation.has_w_space(G):  # R3GAN: no w latents, so no PPL or equivariance
        return Generator(generate=generate, z_dim=G.z_dim, c_dim=c_dim)
    variables, text = generate.params  # on every device once, shared by the other maps
    mapping = sharded(lambda v_t, z, c: G.apply(v_t[0], z, embed(v_t[1], c), method="mapping"), (variables, text))
    synthesis_map = sharded(
        lambda v_key, ws: G.apply(_redraw_noise(*v_key), ws, noise_mode="const", method="synthesis"),
        (variables, jax.random.key(0)))

    def synthesis(ws: jax.Array, noise_key: jax.Array) -> np.ndarray:
        return synthesis_map(ws, params=(variables, noise_key))

    render = None
    if takes_transform(G):
        render_map = sharded(lambda v_t, z, c: G.apply(v_t[0], z, c, noise_mode="const", transform=v_t[1]),
                             (variables, jnp.eye(3)))

        def render(z: jax.Array, c: jax.Array, transform: jax.Array) -> np.ndarray:
            return render_map(z, c, params=(variables, transform))

    return Generator(generate=generate, z_dim=G.z_dim, c_dim=c_dim, mapping=mapping, synthesis=synthesis,
                     render=render)


def random_labels(key: jax.Array, labels: np.ndarray | None, c_dim: int, batch: int) -> jax.Array:
    """[batch, c_dim] conditioning: zeros-width for unconditional models, else random dataset labels."""
    if c_dim == 0:
        return jnp.zeros((batch, 0), jnp.float32)
    if labels is None or labels.ndim != 2 or labels.shape[1] != c_dim or labels.shape[0] == 0:
        shape = None if labels is None else labels.shape
        raise ValueError(f"a conditional generator (c_dim={c_dim}) needs the dataset's labels [N, {c_dim}], "
                         f"got {shape}")
    rows = jax.random.randint(key, (batch,), 0, labels.shape[0])
    return jnp.asarray(labels, jnp.float32)[rows]


def latents_and_labels(key: jax.Array, z_dim: int, c_dim: int, labels: np.ndarray | None,
                       batch: int) -> tuple[jax.Array, jax.Array]:
    """Standard-normal z [batch, z_dim] and matching labels c [batch, c_dim]."""
    key_z, key_c = jax.random.split(key)
    return jax.random.normal(key_z, (batch, z_dim)), random_labels(key_c, labels, c_dim, batch)
