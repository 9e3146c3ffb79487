"""Writing frames as a video: MP4 through imageio + imageio-ffmpeg when installed, else an animated GIF."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import warnings
from typing import Iterable

import numpy as np
import PIL.Image


def can_write_mp4() -> bool:
    """Whether imageio and its ffmpeg plugin (imageio-ffmpeg) are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("imageio", "imageio_ffmpeg"))


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 60,
                bitrate: str = "12M") -> pathlib.Path:
    """Writes uint8 HWC frames; returns the file written (`path`, or `path` with .gif when MP4 is unavailable)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".gif" and can_write_mp4():
        import imageio

        with warnings.catch_warnings():
            # Starting the ffmpeg process forks and execs at once: JAX's warning about forking does not apply.
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            with imageio.get_writer(path, mode="I", fps=fps, codec="libx264", bitrate=bitrate) as writer:
                for frame in frames:
                    writer.append_data(_squeeze(frame))
        return path
    path = path.with_suffix(".gif")
    images = (PIL.Image.fromarray(_squeeze(frame)) for frame in frames)
    first = next(images, None)
    if first is None:
        raise ValueError("a video needs at least one frame")
    first.save(path, save_all=True, append_images=images, duration=max(1, round(1000 / fps)), loop=0)
    return path


def _squeeze(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, np.uint8)
    return frame[..., 0] if frame.shape[-1] == 1 else frame
