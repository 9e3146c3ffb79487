"""CLIP's byte-level BPE tokenizer: captions -> [N, 77] int32 token ids for the CLIP text tower.

The vocabulary is CLIP's merge list `bpe_simple_vocab_16e6.txt.gz`, by default the copy shipped inside the
installed `open_clip` package (found on disk, open_clip is never imported). Ids: the 256 byte symbols and
the same 256 closing a word (`</w>`), both in the order of the characters standing for the bytes (see
`byte_symbols`), one id per merge in rank order, then `<start_of_text>` and
`<end_of_text>` (49,408 in all). Text is cleaned as CLIP cleans it (ftfy when installed, HTML entities
unescaped twice, whitespace collapsed, lower case), split into words with CLIP's Unicode pattern, and
each word's UTF-8 bytes are merged pair by pair, lowest merge rank first.
"""
from __future__ import annotations

import functools
import gzip
import html
import os
import pathlib
from typing import Sequence

import numpy as np

from stylegan_jax.perceptual import weight_files

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_PACKAGE = "open_clip"
VOCAB_PIP_SPEC = "open_clip_torch==3.3.0"
CONTEXT_LENGTH = 77
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
WORD_END = "</w>"
MERGE_COUNT = 49152 - 256 - 2        # merges CLIP keeps from the file (its vocabulary is 49,408 ids)
TEXT_EXTRA_HINT = "pip install 'stylegan_jax[text]'"


@functools.lru_cache(maxsize=None)
def byte_symbols() -> tuple[str, ...]:
    """The printable character standing for each byte 0..255 (printable Latin-1 bytes stand for themselves)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    symbols, spare = [], 256
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:  # whitespace and control bytes borrow characters from 256 upward, in byte order
            symbols.append(chr(spare))
            spare += 1
    return tuple(symbols)


def clean_text(text: str) -> str:
    """CLIP's caption cleaning: ftfy.fix_text (if installed), HTML unescaped twice, whitespace collapsed, lower case."""
    try:
        import ftfy
    except ImportError:
        pass
    else:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def _import_regex():
    try:
        import regex
    except ImportError:
        raise ImportError(f"the CLIP tokenizer needs the `regex` package: {TEXT_EXTRA_HINT}") from None
    return regex


class CLIPTokenizer:
    """CLIP's BPE tokenizer over the merge list at `vocab_path` (default: the one inside the installed open_clip)."""

    def __init__(self, vocab_path: str | os.PathLike | None = None):
        regex = _import_regex()
        if vocab_path is None:
            path = weight_files.packaged_file(VOCAB_PACKAGE, VOCAB_FILE, VOCAB_PIP_SPEC)
        else:
            path = pathlib.Path(vocab_path).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"CLIP vocabulary file {str(path)!r} does not exist")
        merges = self._read_merges(path)
        symbols = sorted(byte_symbols())  # ids follow the characters' order, not the bytes'
        names = symbols + [s + WORD_END for s in symbols] + ["".join(pair) for pair in merges]
        names += [START_TOKEN, END_TOKEN]
        self.ids = {name: i for i, name in enumerate(names)}
        if len(self.ids) != len(names):
            raise ValueError(f"{path}: the merge list yields duplicate tokens; not a CLIP vocabulary")
        self.names = names
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id, self.end_id = self.ids[START_TOKEN], self.ids[END_TOKEN]
        self.vocab_size = len(names)
        self._byte_of_symbol = {s: b for b, s in enumerate(byte_symbols())}
        specials = "|".join(regex.escape(t) for t in (START_TOKEN, END_TOKEN))
        # The special tokens, English contractions, runs of letters, single digits, runs of other non-spaces.
        self._words = regex.compile(
            specials + r"|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
        self._word_cache: dict[str, tuple[str, ...]] = {START_TOKEN: (START_TOKEN,), END_TOKEN: (END_TOKEN,)}

    @staticmethod
    def _read_merges(path: pathlib.Path) -> list[tuple[str, str]]:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a gzipped CLIP merge list ({error})") from None
        merges = [tuple(line.split()) for line in lines[1:1 + MERGE_COUNT]]  # line 0 is a version header
        bad = next((i for i, m in enumerate(merges) if len(m) != 2), None)
        if len(merges) != MERGE_COUNT or bad is not None:
            where = f"line {bad + 2} is not a pair" if bad is not None else f"{len(merges)} merges"
            raise ValueError(f"{path}: not a CLIP merge list ({where}, expected {MERGE_COUNT} pairs)")
        return merges

    def _merge(self, word: str) -> tuple[str, ...]:
        """The BPE symbols of one word given as byte symbols; its last symbol carries the word end."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        parts = list(word[:-1]) + [word[-1] + WORD_END]
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: self.ranks.get(pair, MERGE_COUNT))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):  # every occurrence of the best pair, left to right, without overlaps
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        result = tuple(parts)
        self._word_cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Token ids of the cleaned text, without the start and end tokens."""
        symbols = byte_symbols()
        ids = []
        for word in self._words.findall(clean_text(text)):
            word = "".join(symbols[b] for b in word.encode("utf-8"))
            ids.extend(self.ids[part] for part in self._merge(word))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids: each word followed by a space, then stripped (the original spacing is not kept)."""
        symbols = "".join(self.names[int(i)] for i in ids)
        data = bytes(self._byte_of_symbol[c] for c in symbols.replace(WORD_END, byte_symbols()[ord(" ")]))
        return data.decode("utf-8", errors="replace").strip()

    def tokenize(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> np.ndarray:
        """int32 [N, context_length]: start, the text's ids, end, zeros; overlong texts are cut, keeping the end."""
        if isinstance(texts, str):
            texts = [texts]
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2 (start and end tokens), got {context_length}")
        result = np.zeros((len(texts), context_length), np.int32)
        for row, text in enumerate(texts):
            ids = [self.start_id] + self.encode(text)[:context_length - 2] + [self.end_id]
            result[row, :len(ids)] = ids
        return result

    __call__ = tokenize


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(vocab_path: str | None) -> CLIPTokenizer:
    return CLIPTokenizer(vocab_path)


def tokenize(texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH,
             vocab_path: str | os.PathLike | None = None) -> np.ndarray:
    """`CLIPTokenizer(vocab_path).tokenize(texts, context_length)`, the tokenizer built once per vocabulary."""
    return _cached_tokenizer(None if vocab_path is None else os.fspath(vocab_path)).tokenize(texts, context_length)
