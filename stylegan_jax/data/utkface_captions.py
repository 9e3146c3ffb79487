"""Writes a captioned image folder from UTKFace: each face linked (or copied) beside a .txt caption.

    python -m stylegan_jax.data.utkface_captions SRC DST [--limit N] [--copy]

UTKFace names its files `{age}_{gender}_{race}_{datetime}.jpg` (the aligned crops add `.chip.jpg`):
gender 0 male, 1 female; race 0 white, 1 black, 2 asian, 3 indian, 4 others. Each face becomes
DST/`{age}_{gender}_{race}_{datetime}`.jpg plus a .txt caption such as "a photo of a 34 year old
asian woman"; files whose names do not parse are skipped and counted. Read DST with
dataset.captions=True (see stylegan_jax.data.captions). UTKFace is for non-commercial research only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)
RACES = ("white", "black", "asian", "indian", None)  # 4: "others", named by no word


def parse_name(name: str) -> tuple[int, int, int, str] | None:
    """(age, gender, race, stem) of a UTKFace file name, or None when it does not follow the pattern."""
    match = _NAME.match(name)
    if match is None:
        return None
    age, gender, race, stamp = match.group(1, 2, 3, 4)
    return int(age), int(gender), int(race), f"{age}_{gender}_{race}_{stamp}"


def caption(age: int, gender: int, race: int) -> str:
    """E.g. caption(34, 1, 2) == 'a photo of a 34 year old asian woman'."""
    person = ("man", "woman")[gender] if age >= 18 else ("boy", "girl")[gender]
    if age < 3:
        person = "baby " + person
    race_word = RACES[race]
    article = "an" if age in (8, 11, 18) or 80 <= age < 90 else "a"
    words = [f"{age} year old"] + ([race_word] if race_word else []) + [person]
    return f"a photo of {article} " + " ".join(words)


def write_captioned_folder(src: str, dst: str, *, limit: int = 0, copy: bool = False) -> tuple[int, int]:
    """Links (or copies) UTKFace's faces from `src` into `dst` with captions; returns (written, skipped)."""
    if not os.path.isdir(src):
        raise ValueError(f"SRC: {src} is not a folder")
    if limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    os.makedirs(dst, exist_ok=True)
    written = skipped = 0
    for name in sorted(os.listdir(src)):
        if limit and written >= limit:
            break
        path = os.path.join(src, name)
        parsed = parse_name(name) if os.path.isfile(path) else None
        if parsed is None:
            skipped += 1
            continue
        age, gender, race, stem = parsed
        target = os.path.join(dst, stem + ".jpg")
        if os.path.lexists(target):
            os.remove(target)
        if copy:
            shutil.copyfile(path, target)
        else:
            os.symlink(os.path.abspath(path), target)
        with open(os.path.join(dst, stem + ".txt"), "w", encoding="utf-8") as f:
            f.write(caption(age, gender, race) + "\n")
        written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    """The command line; prints the counts and returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m stylegan_jax.data.utkface_captions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("src", metavar="SRC", help="UTKFace folder of {age}_{gender}_{race}_{datetime}.jpg files")
    parser.add_argument("dst", metavar="DST", help="output folder (created)")
    parser.add_argument("--limit", type=int, default=0, help="write at most this many faces (0: all)")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    args = parser.parse_args(argv)
    try:
        written, skipped = write_captioned_folder(args.src, args.dst, limit=args.limit, copy=args.copy)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    print(f"wrote {written} captioned image(s) to {args.dst}; skipped {skipped} file(s) with malformed names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
