"""Hot pixels: found in an observation's own frames, repaired before the photometry.

A DSLR's hot pixels are many (the real POCS frames hold ~1,000 per megapixel more than
150 ADU above their surroundings in 120 s) and fixed on the sensor, while tracking drifts
the field a few pixels over a night: a hot pixel drifting into or out of a star's aperture
or annulus makes a false dip hours long. Repairing single-pixel spikes frame by frame
misses those on a star (its light lifts the neighbours too), so the map comes from the
whole observation: a pixel that is a spike on at least :data:`MIN_FRACTION` of the frames
is hot on all of them, star or no star. Cosmic rays and noise spikes come and go.

- :func:`spikes`: one raw RGGB frame's isolated single-pixel spikes (flat mosaic indices):
  per Bayer plane, a pixel more than :data:`SPIKE_ADU` above every one of its 8 same-colour
  neighbours, and by more than :data:`SPIKE_LIFT` of its own excess over the plane's sky less
  :data:`SPIKE_NOISE` sigmas of the plane's noise (a star's peak lifts its neighbours to over
  half of it; a hot pixel does not). Two hot pixels side by side count too (at a real
  camera's rate ~8% of hot pixels have a hot same-colour neighbour, and they were half of
  those the map missed): each a spike over all its neighbours but the other, and each with
  its four adjacent pixels of the other colours not lifted over their sky by more than
  :data:`PAIR_ADJACENT` of its excess. Without that last test the pairs of the real
  unsolved.fits were 3,300 per megapixel, mostly faint stars sharp in one direction (their
  two brightest pixels in a plane, and the other colours lit beside them); with it, 120.
- :func:`hot_pixel_map`: the pixels that are spikes on enough of the frames (:class:`SpikeCounts`
  the same, counting frames as they come).
- :func:`repair`: a frame with its mapped pixels replaced by the median of their same-colour
  neighbours that are not mapped themselves.

Pixel conventions as in :mod:`measure`: 0-based, x along a row, y down the rows; a flat
index is ``y * width + x``.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from panoptes_network.simulator.camera import BIAS_ADU

SPIKE_ADU = 60.0  # above the brightest same-colour neighbour
SPIKE_LIFT = 0.8  # ... and by this fraction of the pixel's excess over the plane's sky, less
SPIKE_NOISE = 2.0  # this many of the plane's noise sigmas (a faint hot pixel's brightest neighbour is
# the top of 8 noise draws, ~1.4 sigma up: with no allowance one of 130 ADU on a 75 ADU sky was found on 1 frame of 10)
MIN_FRACTION = 0.1  # of an observation's frames a pixel must be a spike on to be mapped
MIN_DETECTIONS = 2  # and at least this many (one frame's cosmic ray is never mapped)
SKY_GRID_STEP = 16  # plane pixels between the samples of a plane's sky level
BAYER_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (dy, dx) of the four planes of an RGGB mosaic
NEIGHBOURS = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b)
ADJACENT = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (dy, dx) of a mosaic pixel's adjacent pixels, the other colours
PAIR_ADJACENT = 0.3  # a pair's pixel: its adjacent pixels rise less than this fraction of its excess


def spikes(data: np.ndarray, bias: float = BIAS_ADU) -> np.ndarray:
    """Flat indices (int64, sorted) of ``data``'s isolated single-pixel spikes, and of its
    pairs of them (see the module).

    Candidates first, from the two neighbours along the row (two slices of the plane: the
    lower of them must be beaten, the other may be a pair's partner), then the other six
    only at the candidates, so a full frame costs a few passes over its pixels."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"a frame is a 2-D mosaic, not an array of shape {data.shape}")
    height, width = data.shape
    skies, noises = {}, {}
    for dy, dx in BAYER_OFFSETS:
        grid = data[dy::2, dx::2][::SKY_GRID_STEP, ::SKY_GRID_STEP].astype(np.float32)
        level = float(np.median(grid)) if grid.size else 0.0
        skies[dy, dx] = level - bias
        noises[dy, dx] = 1.4826 * float(np.median(np.abs(grid - level))) if grid.size else 0.0
    found = []
    for dy, dx in BAYER_OFFSETS:
        plane = data[dy::2, dx::2]
        rows, columns = plane.shape
        if rows < 3 or columns < 3:
            continue
        sky, noise = skies[dy, dx], noises[dy, dx]
        # a padded float32 copy: off-plane neighbours are -inf, so an edge pixel is judged by those it has
        padded = np.full((rows + 2, columns + 2), -np.inf, np.float32)
        padded[1:-1, 1:-1] = plane
        padded[1:-1, 1:-1] -= np.float32(bias)
        centre = padded[1:-1, 1:-1]
        along_row = np.minimum(padded[1:-1, :-2], padded[1:-1, 2:])
        candidate = np.flatnonzero(centre - along_row > np.float32(SPIKE_ADU))
        if not len(candidate):
            continue
        row, column = np.divmod(candidate, columns)
        value = centre.ravel()[candidate]
        around = np.array([padded[row + 1 + a, column + 1 + b] for a, b in NEIGHBOURS])
        ranked = np.partition(around, len(NEIGHBOURS) - 2, axis=0)
        floor = np.maximum(np.float32(SPIKE_ADU), SPIKE_LIFT * (value - sky) - SPIKE_NOISE * noise)
        isolated = value - ranked[-1] > floor
        paired = ~isolated & (value - ranked[-2] > floor)
        paired &= (row > 0) & (row < rows - 1) & (column > 0) & (column < columns - 1)  # all 8 neighbours seen
        paired[paired] &= ~_lifts_other_colours(data, bias, 2 * row[paired] + dy, 2 * column[paired] + dx,
                                                value[paired] - sky, skies, noises)
        here = candidate[paired]
        offset = np.array(NEIGHBOURS)[np.argmax(around[:, paired], axis=0)]
        there = (row[paired] + offset[:, 0]) * columns + column[paired] + offset[:, 1]
        size = np.int64(rows * columns)
        mutual = np.isin(there * size + here, here * size + there)  # each the other's brightest neighbour
        chosen = np.concatenate([candidate[isolated], here[mutual]])
        chosen_row, chosen_column = np.divmod(chosen, columns)
        found.append((2 * chosen_row + dy) * width + 2 * chosen_column + dx)
    if not found:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate(found).astype(np.int64))


def _lifts_other_colours(data: np.ndarray, bias: float, y: np.ndarray, x: np.ndarray, excess: np.ndarray,
                         skies: dict, noises: dict) -> np.ndarray:
    """Whether a pixel's four adjacent pixels (the other colours) rise over their own plane's
    sky by more than :data:`PAIR_ADJACENT` of its excess (plus :data:`SPIKE_NOISE` of their
    noise sigmas): a star's light does, a hot pixel's does not."""
    height, width = data.shape
    sky = np.array([[skies[0, 0], skies[0, 1]], [skies[1, 0], skies[1, 1]]], np.float32)
    noise = np.array([[noises[0, 0], noises[0, 1]], [noises[1, 0], noises[1, 1]]], np.float32)
    lifted = np.zeros(len(y), bool)
    for a, b in ADJACENT:
        yy, xx = y + a, x + b
        on = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        yy, xx = yy[on], xx[on]
        rise = data[yy, xx].astype(np.float32) - np.float32(bias) - sky[yy % 2, xx % 2]
        lifted[on] |= rise > PAIR_ADJACENT * excess[on] + SPIKE_NOISE * noise[yy % 2, xx % 2]
    return lifted


def hot_pixel_map(detections: Iterable[np.ndarray], frames: int | None = None,
                  min_fraction: float = MIN_FRACTION) -> np.ndarray:
    """Flat indices (sorted) of the pixels that are spikes (:func:`spikes`, one array per
    frame) on at least ``min_fraction`` of ``frames`` (default: the number of arrays) and on
    at least :data:`MIN_DETECTIONS` of them. A pure function of its input: the same frames
    make the same map, whatever their order."""
    detections = [np.unique(np.asarray(d, np.int64)) for d in detections]
    frames = len(detections) if frames is None else frames
    if not detections or frames <= 0:
        return np.zeros(0, np.int64)
    pixels, counts = np.unique(np.concatenate(detections), return_counts=True)
    return pixels[counts >= _detections_needed(frames, min_fraction)]


def _detections_needed(frames: int, min_fraction: float = MIN_FRACTION) -> int:
    return max(MIN_DETECTIONS, math.ceil(min_fraction * frames - 1e-9))


class SpikeCounts:
    """:func:`hot_pixel_map` for frames that come one at a time (a service's long observation):
    each pixel's count of spikes, per frame shape, in 2 bytes a pixel, not the frames' lists."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int], np.ndarray] = {}
        self._frames: dict[tuple[int, int], int] = {}

    def add(self, shape: tuple[int, int], flat: np.ndarray) -> None:
        shape = (int(shape[0]), int(shape[1]))
        counts = self._counts.get(shape)
        if counts is None:
            counts = self._counts[shape] = np.zeros(shape[0] * shape[1], np.uint16)
        flat = np.unique(np.asarray(flat, np.int64))
        counts[flat[(flat >= 0) & (flat < counts.size)]] += 1
        self._frames[shape] = self._frames.get(shape, 0) + 1

    def hot_pixel_map(self, shape: tuple[int, int], min_fraction: float = MIN_FRACTION) -> np.ndarray:
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._counts:
            return np.zeros(0, np.int64)
        needed = _detections_needed(self._frames[shape], min_fraction)
        return np.flatnonzero(self._counts[shape] >= needed).astype(np.int64)


def as_xy(flat: np.ndarray, width: int) -> np.ndarray:
    """(n, 2) x, y of flat mosaic indices."""
    y, x = np.divmod(np.asarray(flat, np.int64), width)
    return np.stack([x, y], axis=1)


def as_flat(xy: np.ndarray, width: int) -> np.ndarray:
    xy = np.asarray(xy, np.int64).reshape(-1, 2)
    return xy[:, 1] * width + xy[:, 0]


def repair(data: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """A copy of ``data`` with each pixel of ``hot`` (flat indices) replaced by the median of its
    8 same-colour neighbours (2 px away) that are on the frame and not hot themselves (left as
    it is if it has none). ``data`` itself when ``hot`` is empty."""
    hot = np.asarray(hot, np.int64)
    data = np.asarray(data)
    height, width = data.shape
    hot = hot[(hot >= 0) & (hot < data.size)]
    if not len(hot):
        return data
    row, column = np.divmod(hot, width)
    mapped = np.zeros(data.size, bool)
    mapped[hot] = True
    values = np.full((len(NEIGHBOURS), len(hot)), np.nan)
    for k, (a, b) in enumerate(NEIGHBOURS):
        r, c = row + 2 * a, column + 2 * b
        on = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        flat = np.where(on, r * width + c, 0)
        usable = on & ~mapped[flat]
        values[k, usable] = data.ravel()[flat[usable]]
    has = np.isfinite(values).any(axis=0)
    out = data.copy()
    with np.errstate(all="ignore"):
        median = np.nanmedian(values[:, has], axis=0)
    if np.issubdtype(out.dtype, np.integer):
        median = np.rint(median)
    out.ravel()[hot[has]] = median.astype(out.dtype)
    return out
