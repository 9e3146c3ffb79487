"""Design of the Kaiser-windowed low-pass filters of StyleGAN3's alias-free layers."""
from __future__ import annotations

import numpy as np
import scipy.signal
import scipy.special


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> np.ndarray | None:
    """Returns a float32 low-pass FIR filter with cutoff `cutoff` and transition band `width`
    at sampling rate `fs`: 1-D separable taps (scipy's Kaiser-windowed `firwin`), or with
    `radial=True` a [numtaps, numtaps] Kaiser-windowed jinc kernel of unit sum; None
    (the identity) for a single tap.
    """
    if isinstance(numtaps, bool) or int(numtaps) != numtaps or numtaps < 1:
        raise ValueError(f"numtaps must be a positive integer, got {numtaps!r}")
    numtaps = int(numtaps)
    if numtaps == 1:
        return None
    if not radial:
        return scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs).astype(np.float32)

    # Jinc (the 2-D ideal low-pass) sampled at the tap positions, centred; its limit at r=0 is `cutoff`.
    taps = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(taps[None, :], taps[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        jinc = np.where(r > 0, scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r), cutoff)
    attenuation = scipy.signal.kaiser_atten(numtaps, width / (fs / 2))
    window = np.kaiser(numtaps, scipy.signal.kaiser_beta(attenuation))
    f = jinc * np.outer(window, window)
    return (f / np.sum(f)).astype(np.float32)
