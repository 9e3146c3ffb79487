"""Shared command-line plumbing: argument types, the --network flags, and one-line errors with exit code 2."""
from __future__ import annotations

import argparse
import pickle
import sys
from typing import Any, Callable, Sequence

import flax.linen as nn
from absl import logging

from stylegan_jax.perceptual import clip_text
from stylegan_jax.sampling.loading import load_generator
from stylegan_jax.sampling.parsing import parse_finite
from stylegan_jax.sampling.render import NOISE_MODES

USAGE_ERROR = 2
# What bad input raises: malformed values, unreadable or foreign files.
INPUT_ERRORS = (ValueError, OSError, pickle.UnpicklingError, EOFError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage dump), exiting with code 2."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def arg_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """Wraps a parser raising ValueError into an argparse type that reports its message."""
    def parse_arg(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse_arg.__name__ = name
    return parse_arg


FINITE_NUMBER = arg_type(parse_finite, "number")  # a float flag that refuses nan and infinities


def new_parser(module: str, description: str) -> ArgumentParser:
    """A parser for `python -m stylegan_jax.<module>` with the --network and --step flags."""
    parser = ArgumentParser(prog=f"python -m stylegan_jax.{module}", description=description)
    parser.add_argument("--network", required=True, metavar="PATH",
                        help="official network .pkl, stylegan_jax export (file or folder) or training run folder")
    parser.add_argument("--step", type=int, metavar="N",
                        help="training step to load from a checkpoint folder (default: the latest)")
    parser.add_argument("--raw", action="store_true",
                        help="the raw generator G of a pickle or checkpoint instead of its moving average G_ema")
    return parser


def add_noise_mode(parser: argparse.ArgumentParser) -> None:
    """Adds --noise-mode (const, random or none; default const)."""
    parser.add_argument("--noise-mode", choices=NOISE_MODES, default="const", help="noise mode (default: const)")


def add_clip_flags(parser: argparse.ArgumentParser) -> None:
    """Adds --clip and --clip-model: the CLIP text tower that embeds a StyleGAN-T generator's captions."""
    parser.add_argument("--clip", metavar="FILE", help="CLIP weights (open_clip/OpenAI) whose text tower embeds "
                        "captions for a StyleGAN-T generator (default: the tower saved in its training run folder)")
    parser.add_argument("--clip-model", default="ViT-L-14", choices=sorted(clip_text.PRESETS),
                        help="the CLIP model of --clip (default: ViT-L-14)")


def load_network(args: argparse.Namespace) -> tuple[nn.Module, dict]:
    """Loads the generator named by --network (and --step), telling the user on stdout."""
    print(f'Loading networks from "{args.network}"...')
    return load_generator(args.network, step=args.step, raw=args.raw)


def run(parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace], None],
        argv: Sequence[str] | None = None) -> int:
    """Parses argv and runs command(args); bad input ends with a one-line message on stderr and exit code 2."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or an argument error already reported on one line
        return 0 if e.code is None else int(e.code)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # keep stderr for errors: Orbax logs routine warnings through absl
    try:
        command(args)
    except INPUT_ERRORS as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        logging.set_verbosity(verbosity)
    return 0
