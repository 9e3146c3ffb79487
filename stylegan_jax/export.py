"""Exports a generator for sampling without the training stack.

    python -m stylegan_jax.export --network=PATH --output=g.msgpack [--format=file|folder|state-dict]

'file' (default) and 'folder' write the stylegan_jax export (msgpack variables + JSON spec) that
--network of the sampling tools and sampling.load_generator accept; 'state-dict' writes an .npz of
the official state dict (dotted names, official layouts) with the class name and kwargs.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from stylegan_jax.sampling import cli
from stylegan_jax.sampling.export_file import export_generator, export_state_dict

FORMATS = ("file", "folder", "state-dict")


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = cli.new_parser("export", "Export a generator (G_ema of a pickle, or of a checkpoint).")
    parser.add_argument("--output", required=True, metavar="PATH", help="file or folder to write")
    parser.add_argument("--format", choices=FORMATS, default="file", help="what to write (default: file)")
    return parser


def export(args: argparse.Namespace) -> None:
    """Runs the command."""
    G, variables = cli.load_network(args)
    if args.format == "state-dict":
        path = export_state_dict(args.output, G, variables)
    else:
        path = export_generator(args.output, G, variables, folder=args.format == "folder")
    print(f"Wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return cli.run(build_parser(), export, argv)


if __name__ == "__main__":
    sys.exit(main())
