"""Captioned image folders and zips: one caption per image, tokenized into the label vector.

A folder or zip of PNG/JPEG images is captioned either by a text file beside each image (`a/x.png` ->
`a/x.txt`, UTF-8) or by a `captions.jsonl` at its root, one `{"file": "a/x.png", "text": "..."}` per
line; when captions.jsonl exists it alone is read. Whitespace in a caption is collapsed. Every image
needs a non-empty caption; a missing or empty caption, a malformed line, a repeated file or a line
naming no image fails with a one-line DatasetConfigError naming the file.

Design: with `dataset.captions = True` the captions take the place of class labels (use_labels must be
off). Each image's caption becomes CLIP's int32 [77] token ids, delivered as the batch's float32
'label' vector, so `info.c_dim == 77` and batches keep their {'image', 'label'} shape through the
unchanged tf.data pipeline; token ids (< 49,408 < 2**24) are exact in float32, so
`batch['label'].astype(np.int32)` recovers them. The data layer may not import the CLIP tokenizer
(stylegan_jax.perceptual sits above it in tests/test_import_graph.py), so whoever opens a captioned
dataset passes the tokenizer: `open_dataset(cfg, ..., tokenize=clip_tokenizer.tokenize)`.
`Dataset.caption_texts(positions)` gives the caption strings, e.g. for sample grids.
"""
from __future__ import annotations

import json
import posixpath
from typing import Callable, Sequence

import numpy as np

from stylegan_jax.data.config import DatasetConfigError
from stylegan_jax.data.files import ImageFiles

CAPTIONS_FILE = "captions.jsonl"
CONTEXT_LENGTH = 77  # CLIP's text context: the token ids per caption
Tokenizer = Callable[[Sequence[str]], np.ndarray]


def caption_file(image_name: str) -> str:
    """The caption file beside an image: 'a/x.png' -> 'a/x.txt'."""
    return posixpath.splitext(image_name)[0] + ".txt"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _fail(problem: str) -> DatasetConfigError:
    return DatasetConfigError("captions", problem)


def _text_file_captions(files: ImageFiles) -> list[str]:
    texts = []
    for name in files.names:
        where = files.describe(caption_file(name))
        if caption_file(name) not in files.all_names:
            raise _fail(f"{files.describe(name)} has no caption: {where} does not exist (or write {CAPTIONS_FILE})")
        try:
            with files.open(caption_file(name)) as f:
                text = _clean(f.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise _fail(f"{where} cannot be read: {type(e).__name__}: {e}") from None
        if not text:
            raise _fail(f"{where} is empty: every image needs a caption")
        texts.append(text)
    return texts


def _jsonl_captions(files: ImageFiles) -> list[str]:
    images, table = set(files.names), {}
    try:
        with files.open(CAPTIONS_FILE) as f:
            lines = f.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(f"{files.describe(CAPTIONS_FILE)} cannot be read: {type(e).__name__}: {e}") from None
    for number, line in enumerate(lines, 1):
        where = f"{files.describe(CAPTIONS_FILE)} line {number}"
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name, text = str(entry["file"]).replace("\\", "/"), entry["text"]
            if not isinstance(text, str):
                raise TypeError(f'"text" must be a string, got {type(text).__name__}')
        except (ValueError, KeyError, TypeError) as e:
            raise _fail(f'{where}: expected {{"file": ..., "text": ...}}: {type(e).__name__}: {e}') from None
        if name not in images:
            raise _fail(f"{where} names {name!r}, which is not an image in {files.path}")
        if name in table:
            raise _fail(f"{where} captions {name!r} a second time")
        if not _clean(text):
            raise _fail(f"{where}: the caption of {name!r} is empty")
        table[name] = _clean(text)
    missing = [n for n in files.names if n not in table]
    if missing:
        raise _fail(f"{files.describe(missing[0])} has no caption in {files.describe(CAPTIONS_FILE)} "
                    f"({len(missing)} image(s) without one)")
    return [table[n] for n in files.names]


def read_captions(files: ImageFiles) -> list[str]:
    """The caption of each of `files.names`, from captions.jsonl when present, else from the .txt files beside them."""
    return _jsonl_captions(files) if CAPTIONS_FILE in files.all_names else _text_file_captions(files)


def tokenize_captions(texts: Sequence[str], tokenize: Tokenizer | None) -> np.ndarray:
    """int32 [len(texts), 77] token ids of the captions by `tokenize` (DatasetConfigError when it is missing or wrong)."""
    if tokenize is None:
        raise _fail("captioned datasets need a tokenizer: pass tokenize=stylegan_jax.perceptual.clip_tokenizer."
                    "tokenize to open_dataset / iterate_images")
    tokens = np.asarray(tokenize(list(texts)))
    if tokens.shape != (len(texts), CONTEXT_LENGTH) or not np.issubdtype(tokens.dtype, np.integer):
        raise _fail(f"the tokenizer returned {tokens.dtype} {list(tokens.shape)}, expected integer "
                    f"[{len(texts)}, {CONTEXT_LENGTH}]")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= 2 ** 24):
        raise _fail("token ids must lie in [0, 2**24) to be exact as float32 labels")
    return tokens.astype(np.int32)
