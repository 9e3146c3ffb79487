"""Converts a folder or zip of PNG/JPEG images into TFRecord shards for training (source='tfrecord').

    python -m stylegan_jax.dataset_tool --source=DIR_OR_ZIP --dest=OUT_DIR --resolution=256 \\
        [--shards=N] [--channels=3] [--use-labels] [--convert-channels] [--max-images=N]

Images are centre-cropped and resized exactly as training reads a folder, and stored as PNG in
tf.train.Example records {'image', 'label'}; OUT_DIR/metadata.json holds the count, resolution,
channels, labels and the unreadable files that were skipped. Errors are one line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from typing import Sequence

import numpy as np
import PIL.Image

from stylegan_jax import fileio
from stylegan_jax.data._tf import tensorflow
from stylegan_jax.data.config import TFRECORD_METADATA, DatasetConfigError, validate_dataset_config
from stylegan_jax.data.image_set import ImageSet
from stylegan_jax.data.records import encode_example
from stylegan_jax.images import image_size

IMAGES_PER_SHARD = 4096  # the default shard count aims at this many images per shard
_FLAGS = {"path": "--source", "max_size": "--max-images", "use_labels": "--use-labels",
          "convert_channels": "--convert-channels"}


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def convert(source: str, dest: str, *, resolution: int | str | tuple[int, int], channels: int = 3, shards: int = 0,
            use_labels: bool = False, convert_channels: bool = False, max_images: int = 0, fit: str = "crop") -> dict:
    """Writes the images of `source` as TFRecord shards plus metadata.json into `dest`; returns the metadata."""
    config = validate_dataset_config(dict(
        source="folder" if fileio.isdir(source) else "zip", path=source, resolution=resolution, channels=channels,
        use_labels=use_labels, convert_channels=convert_channels, max_size=max_images, fit=fit))
    if shards < 0:
        raise ValueError(f"--shards must be >= 0, got {shards}")
    if fileio.exists(fileio.join(dest, TFRECORD_METADATA)):
        raise ValueError(f"--dest: {dest} already holds a dataset; choose another folder")
    images = ImageSet(config)
    num_shards = shards or -(-len(images) // IMAGES_PER_SHARD)
    names = [f"data-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    fileio.makedirs(dest)
    written: list[int] = []
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(tensorflow().io.TFRecordWriter(fileio.join(dest, n))) for n in names]
        for batch, positions in images.ordered_batches(64):
            for image, position in zip(batch, positions):
                label = int(images.labels[position]) if use_labels else None
                writers[position * num_shards // len(images)].write(encode_example(_png(image), label))
                written.append(position)
    metadata = dict(name=images.source.name, source=images.source.location, num_images=len(written),
                    resolution=config.resolution if isinstance(config.resolution, int) else list(config.resolution), channels=channels, c_dim=images.c_dim,
                    labels=images.labels[written].tolist() if use_labels else None, shards=names,
                    bad_files=images.bad_files)
    with fileio.open_file(fileio.join(dest, TFRECORD_METADATA), "w") as f:
        json.dump(metadata, f)
    return metadata


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m stylegan_jax.dataset_tool", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder or .zip of PNG/JPEG images (searched recursively)")
    parser.add_argument("--dest", required=True, help="output folder for the shards and metadata.json")
    parser.add_argument("--resolution", required=True,
                        help="output side length (256) or height x width (256x512), powers of two")
    parser.add_argument("--fit", default="crop", help="images of another aspect: 'crop' the centre or 'letterbox' them")
    parser.add_argument("--channels", type=int, default=3, help="1 (grayscale) or 3 (RGB)")
    parser.add_argument("--shards", type=int, default=0,
                        help=f"number of shard files (0: one per {IMAGES_PER_SHARD} images)")
    parser.add_argument("--use-labels", action="store_true",
                        help="store class labels, from dataset.json or else from class sub-folders")
    parser.add_argument("--convert-channels", action="store_true",
                        help="convert images with another channel count instead of failing")
    parser.add_argument("--max-images", type=int, default=0, help="keep a fixed random subset of this many (0: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        meta = convert(args.source, args.dest, resolution=args.resolution, channels=args.channels, shards=args.shards,
                       use_labels=args.use_labels, convert_channels=args.convert_channels, max_images=args.max_images,
                       fit=args.fit)
    except DatasetConfigError as e:
        remedy = "" if e.switch is None else f"; pass {_FLAGS[e.switch[0]]} to {e.switch[1]}"
        print(f"error: {_FLAGS.get(e.key, '--' + e.key)}: {e.problem}{remedy}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    height, width = image_size(meta["resolution"])
    print(f"wrote {meta['num_images']} images ({height}x{width}, {args.channels} channel(s), "
          f"{meta['c_dim']} classes) to {args.dest} in {len(meta['shards'])} shard(s)")
    if meta["bad_files"]:
        print(f"warning: skipped {len(meta['bad_files'])} unreadable file(s), e.g. {meta['bad_files'][:5]}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
