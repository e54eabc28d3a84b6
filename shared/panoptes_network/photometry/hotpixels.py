"""Hot pixels: found in an observation's frames and its camera's, removed before the photometry.

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
  A pair's brighter pixel may be a spike on its own (a faint hot pixel beside a 9,000 ADU
  one), and three together count as well, each with the other colours beside it dark: at a
  real camera's rate the map then missed 10 of 1,588 simulated hot pixels over 150 ADU, not
  19, and a star beside three of them no longer showed a false dip of 5.6 sigma.
- :func:`hot_pixel_map`: the pixels that are spikes on enough of the frames (:class:`SpikeCounts`
  the same, counting frames as they come, with each one's level: its mean :func:`excess`
  over its neighbours where it was a spike, a :class:`HotPixelMap`).
- :func:`camera_map`: an observation's own map joined by the pixels its camera's other
  observations mapped (:class:`ObservationMap`, what each stores). A hot pixel that a star
  covers all night is never a spike in that observation: at a real camera's rate of ~9,000
  per megapixel over 60 ADU, those left 6 star-nights of a simulated field with false dips
  over 5 sigma (max 7.4). In other fields the same pixel is on empty sky.
- :func:`remove`: a frame with each mapped pixel's level taken off, scaled to the frame.
- :func:`repair`: a frame with given pixels replaced by the median of their same-colour
  neighbours that are not among them (for finding stars, not for measuring them).

Pixel conventions as in :mod:`measure`: 0-based, x along a row, y down the rows; a flat
index is ``y * width + x``.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from panoptes_network.simulator.camera import BIAS_ADU, SATURATION_ADU

SATURATION_FRACTION = 0.98  # of SATURATION_ADU: as the photometry's saturation flag
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
SCALE_ADU = 200.0  # hot pixels this bright set a scale between levels (a frame's, another observation's)
SCALE_PIXELS = 20  # and at least this many of them
SCALE_SAMPLE = 2000  # a frame's scale from its brightest ones at most: a median of 2000 ratios is good to ~0.1%
HISTORY_OBSERVATIONS = 10  # the camera's other observations (nearest in time) whose maps join an observation's
HISTORY_AGREEMENT = 0.3  # a pixel joins when that share of them mapped it (one at least): a star's peak that
# passed for a spike in one field does not come back in the others, a hot pixel does


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
        # each the other's brightest neighbour; the other may be a spike on its own (a faint hot
        # pixel beside a bright one, which its own faint partner does not hide)
        either = paired | isolated
        offset = np.array(NEIGHBOURS)[np.argmax(around[:, either], axis=0)]
        there = (row[either] + offset[:, 0]) * columns + column[either] + offset[:, 1]
        size = np.int64(rows * columns)
        links = candidate[either] * size + there
        mutual = np.isin(there[paired[either]] * size + here, links)
        chosen = [candidate[isolated], here[mutual]]
        # three side by side: each a spike over all its neighbours but the other two, the other
        # colours beside it dark, and those two such pixels too (a pair's partner counts as one)
        grouped = ~isolated & ~paired & (value - ranked[-3] > floor)
        grouped &= (row > 0) & (row < rows - 1) & (column > 0) & (column < columns - 1)
        grouped[grouped] &= ~_lifts_other_colours(data, bias, 2 * row[grouped] + dy, 2 * column[grouped] + dx,
                                                  value[grouped] - sky, skies, noises)
        members = np.concatenate([candidate[grouped], here])
        top = np.argsort(-around[:, grouped], axis=0)[:2]
        together = np.ones(grouped.sum(), bool)
        for k in range(2):
            offset = np.array(NEIGHBOURS)[top[k]]
            other = (row[grouped] + offset[:, 0]) * columns + column[grouped] + offset[:, 1]
            together &= np.isin(other, members)
        chosen.append(candidate[grouped][together])
        chosen = np.concatenate(chosen)
        chosen_row, chosen_column = np.divmod(chosen, columns)
        found.append((2 * chosen_row + dy) * width + 2 * chosen_column + dx)
    if not found:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate(found).astype(np.int64))


def frame_spikes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frame's :func:`spikes` and each one's :func:`excess` over its neighbours (NaN where
    the spike is saturated): what a first pass hands :meth:`SpikeCounts.add` for the frame."""
    flat = spikes(data)
    found = excess(data, flat)
    # a saturated spike's excess is only a floor of its level: NaN, so that no level is read from it
    found[_saturated(np.asarray(data).ravel()[flat])] = np.nan
    return flat, found


def _saturated(values: np.ndarray, saturation: float = SATURATION_ADU) -> np.ndarray:
    """Whether each value is as high as the photometry's saturation flag: its excess is only a floor."""
    return values >= SATURATION_FRACTION * saturation


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


@dataclass(frozen=True)
class HotPixelMap:
    """Hot pixels and their levels: what :func:`remove` takes off a frame."""

    pixels: np.ndarray  # flat mosaic indices (int64, sorted)
    levels: np.ndarray  # ADU (float32): each one's mean excess over its same-colour neighbours where it was a spike

    @classmethod
    def empty(cls) -> "HotPixelMap":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.pixels)


class SpikeCounts:
    """The observation's own map from frames that come one at a time (a service's long
    observation): each pixel's count of spikes (as :func:`hot_pixel_map`) and the sum of its
    excess over its neighbours (:func:`excess`), per frame shape, in 8 bytes a pixel.

    Each frame's excesses are put at the first frame's dark current before they are summed
    (divided by the median ratio of its bright spikes' excesses to the first frame's), and the
    map's levels at the frames' median: the sensor's temperature moves every hot pixel's level
    through a night, and a faint one is a spike only on the warm frames, so a plain mean over
    its detections would read it too bright against the bright ones, whose scale
    :func:`remove` takes off each frame. The levels so depend on the frames' order only
    through the ratios' noise (~0.1%); the service adds them in the images' order.

    A level is the mean of the excesses measured (finite): a hot pixel that saturates on the
    warm frames is measured on the cold ones alone. Averaging the saturated frames' floors in
    had read one of ~11,800 ADU (at the table's temperature) as 8,850: taken off the cold
    frames where it was not saturated, it left ~800 ADU in a G 9.9 star's annulus, inside the
    sky's outlier taper, and the star's sky rose as the night cooled (a false dip of 5.9
    sigma in the science bench). A pixel saturated on every frame it was a spike on has no
    level (NaN): :func:`remove` leaves it as it is."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int], np.ndarray] = {}
        self._measured: dict[tuple[int, int], np.ndarray] = {}  # detections with a measured excess
        self._sums: dict[tuple[int, int], np.ndarray] = {}
        self._frames: dict[tuple[int, int], int] = {}
        self._reference: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._scales: dict[tuple[int, int], list[float]] = {}

    def add(self, shape: tuple[int, int], flat: np.ndarray, excesses: np.ndarray | None = None) -> None:
        """One frame's spikes (flat indices) and, if known, their excesses (ADU, as many)."""
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._counts:
            self._counts[shape] = np.zeros(shape[0] * shape[1], np.uint16)
            self._measured[shape] = np.zeros(shape[0] * shape[1], np.uint16)
            self._sums[shape] = np.zeros(shape[0] * shape[1], np.float32)
        flat = np.asarray(flat, np.int64)
        excesses = np.zeros(len(flat), np.float32) if excesses is None else np.asarray(excesses, np.float32)
        flat, first = np.unique(flat, return_index=True)
        excesses = excesses[first]
        on = (flat >= 0) & (flat < self._counts[shape].size)
        self._counts[shape][flat[on]] += 1
        scale = self._frame_scale(shape, flat, excesses)
        self._scales.setdefault(shape, []).append(scale)
        measured = on & np.isfinite(excesses)
        self._measured[shape][flat[measured]] += 1
        self._sums[shape][flat[measured]] += excesses[measured] / scale
        self._frames[shape] = self._frames.get(shape, 0) + 1

    def _frame_scale(self, shape: tuple[int, int], flat: np.ndarray, excesses: np.ndarray) -> float:
        """This frame's dark current over the first frame's: the median ratio of the excesses
        of the bright spikes both hold (1 for the first, or with fewer than SCALE_PIXELS)."""
        bright = np.isfinite(excesses) & (excesses > SCALE_ADU)
        reference = self._reference.get(shape)
        if reference is None:
            self._reference[shape] = (flat[bright], excesses[bright])
            return 1.0
        _, mine, theirs = np.intersect1d(flat[bright], reference[0], assume_unique=True, return_indices=True)
        if len(mine) < SCALE_PIXELS:
            return 1.0
        return float(np.median(excesses[bright][mine] / reference[1][theirs]))

    def frames(self, shape: tuple[int, int]) -> int:
        return self._frames.get((int(shape[0]), int(shape[1])), 0)

    def hot_pixel_map(self, shape: tuple[int, int], min_fraction: float = MIN_FRACTION) -> HotPixelMap:
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._counts:
            return HotPixelMap.empty()
        needed = _detections_needed(self._frames[shape], min_fraction)
        pixels = np.flatnonzero(self._counts[shape] >= needed).astype(np.int64)
        typical = float(np.median(self._scales[shape]))  # the levels at the frames' median dark current
        with np.errstate(invalid="ignore", divide="ignore"):
            levels = np.where(self._measured[shape][pixels] > 0,
                              self._sums[shape][pixels] / self._measured[shape][pixels] * typical, np.nan)
        return HotPixelMap(pixels, levels.astype(np.float32))


@dataclass(frozen=True)
class ObservationMap:
    """One observation's own hot-pixel map for one frame shape, as a camera keeps it."""

    sequence_id: str
    shape: tuple[int, int]  # rows, columns
    frames: int  # the frames it was made from
    map: HotPixelMap

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, sequence_id=np.array(self.sequence_id), shape=np.array(self.shape, np.int64),
                            frames=np.array(self.frames, np.int64), pixels=np.asarray(self.map.pixels, np.int32),
                            levels=np.asarray(self.map.levels, np.float32))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ObservationMap":
        """Raises ValueError for bytes that are not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                shape = tuple(int(v) for v in arrays["shape"])
                pixels = np.asarray(arrays["pixels"], np.int64)
                levels = np.asarray(arrays["levels"], np.float32)
                made = cls(str(arrays["sequence_id"]), shape, int(arrays["frames"]), HotPixelMap(pixels, levels))
        except (OSError, KeyError, TypeError, ValueError, EOFError) as error:
            raise ValueError(f"not a hot-pixel map: {error}") from None
        if len(shape) != 2 or len(levels) != len(pixels) or \
                (len(pixels) and (pixels.min() < 0 or pixels.max() >= shape[0] * shape[1])):
            raise ValueError(f"not a hot-pixel map: {len(pixels)} pixels for a frame of shape {shape}")
        return made


def camera_map(own: HotPixelMap, others: Sequence[HotPixelMap], agreement: float = HISTORY_AGREEMENT) -> HotPixelMap:
    """An observation's own map joined by the pixels at least ``agreement`` of ``others``
    mapped (the same camera's other observations, the same frame shape; one at least).
    A joined pixel's level is the median of theirs, each brought to this observation's
    exposure and temperature by that map's scale: the median ratio of the own levels to its
    own, over the bright hot pixels both hold (dark current doubles every few degrees)."""
    if not len(others):
        return own
    pixels, votes = np.unique(np.concatenate([o.pixels for o in others]), return_counts=True)
    needed = max(1, math.ceil(agreement * len(others) - 1e-9))
    joined = np.setdiff1d(pixels[votes >= needed], own.pixels)
    scaled = np.full((len(others), len(joined)), np.nan, np.float32)
    for k, other in enumerate(others):
        scaled[k] = _levels_at(other, joined) * _scale(own, other)
    with np.errstate(all="ignore"):
        levels = np.nanmedian(scaled, axis=0) if len(joined) else np.zeros(0, np.float32)
    everything = np.concatenate([own.pixels, joined])
    order = np.argsort(everything, kind="stable")
    return HotPixelMap(everything[order], np.concatenate([own.levels, levels]).astype(np.float32)[order])


def _levels_at(hot: HotPixelMap, pixels: np.ndarray) -> np.ndarray:
    """``hot``'s levels at ``pixels`` (NaN where it has none)."""
    at = np.searchsorted(hot.pixels, pixels)
    found = (at < len(hot.pixels)) & (hot.pixels[np.minimum(at, len(hot.pixels) - 1)] == pixels) \
        if len(hot.pixels) else np.zeros(len(pixels), bool)
    levels = np.full(len(pixels), np.nan, np.float32)
    levels[found] = hot.levels[at[found]]
    return levels


def _scale(own: HotPixelMap, other: HotPixelMap) -> float:
    """The median of own / other levels over the hot pixels both hold above :data:`SCALE_ADU`
    (1 when they share fewer than :data:`SCALE_PIXELS`)."""
    theirs = _levels_at(other, own.pixels)
    bright = np.isfinite(theirs) & (theirs > SCALE_ADU) & (own.levels > SCALE_ADU)
    if bright.sum() < SCALE_PIXELS:
        return 1.0
    return float(np.median(own.levels[bright] / theirs[bright]))


def excess(data: np.ndarray, flat: np.ndarray, hot: np.ndarray | None = None) -> np.ndarray:
    """ADU (float32) by which each pixel of ``flat`` stands above the median of its 8
    same-colour neighbours (those on the frame and not in ``hot``; NaN where none is)."""
    flat = np.asarray(flat, np.int64)
    return (np.asarray(data).ravel()[flat] - _neighbour_median(data, flat, hot)).astype(np.float32)


def _neighbour_median(data: np.ndarray, flat: np.ndarray, hot: np.ndarray | None = None) -> np.ndarray:
    data = np.asarray(data)
    height, width = data.shape
    row, column = np.divmod(flat, width)
    mapped = np.zeros(data.size, bool)
    mapped[flat if hot is None else np.asarray(hot, np.int64)] = True
    values = np.full((len(NEIGHBOURS), len(flat)), np.nan, np.float32)
    for k, (a, b) in enumerate(NEIGHBOURS):
        r, c = row + 2 * a, column + 2 * b
        on = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        near = np.where(on, r * width + c, 0)
        usable = on & ~mapped[near]
        values[k, usable] = data.ravel()[near[usable]]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a pixel with no usable neighbour
        return np.nanmedian(values, axis=0) if len(flat) else np.zeros(0, np.float32)


def remove(data: np.ndarray, hot: HotPixelMap, saturation: float = SATURATION_ADU) -> tuple[np.ndarray, float, int]:
    """(a copy of ``data`` with each mapped pixel's dark level taken off, the scale it was
    taken off at, how many pixels). The scale is the frame's own: the median ratio of the
    bright hot pixels' excess over their neighbours now to their levels (temperature moves
    it through a night). Subtracting, not replacing by the neighbours, leaves a star's own
    light on the pixel: replaced, a pixel on a star's core lost most of it, and more or less
    as the star drifted (false dips of 12 sigma where the hot pixels under stars were mapped).
    A saturated pixel is left as it is: nothing of the star is left to recover, and the
    saturation flag marks the stars around it; so is one with no level (saturated on every
    frame that mapped it)."""
    data = np.asarray(data)
    if not len(hot):
        return data, 1.0, 0
    values = data.ravel()[hot.pixels]
    usable = ~_saturated(values, saturation) & np.isfinite(hot.levels)
    bright = np.flatnonzero(usable & (hot.levels > SCALE_ADU))
    if len(bright) > SCALE_SAMPLE:  # the neighbours' median is most of this function's time
        bright = bright[np.argpartition(hot.levels[bright], -SCALE_SAMPLE)[-SCALE_SAMPLE:]]
    now = excess(data, hot.pixels[bright], hot.pixels)
    measured = np.isfinite(now)
    ratios = now[measured] / hot.levels[bright][measured]
    scale = float(np.median(ratios)) if len(ratios) >= SCALE_PIXELS else 1.0
    out = data.copy()
    pixels = hot.pixels[usable]
    cleaned = values[usable].astype(np.float32) - np.float32(scale) * hot.levels[usable]
    if np.issubdtype(out.dtype, np.integer):
        cleaned = np.clip(np.rint(cleaned), 0, np.iinfo(out.dtype).max)
    out.ravel()[pixels] = cleaned.astype(out.dtype)
    return out, scale, int(len(pixels))


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
    it is if it has none). ``data`` itself when ``hot`` is empty. For finding stars (plate
    solving); the photometry takes each one's level off instead (:func:`remove`)."""
    hot = np.asarray(hot, np.int64)
    data = np.asarray(data)
    hot = hot[(hot >= 0) & (hot < data.size)]
    if not len(hot):
        return data
    median = _neighbour_median(data, hot)
    has = np.isfinite(median)
    out = data.copy()
    if np.issubdtype(out.dtype, np.integer):
        median = np.rint(median)
    out.ravel()[hot[has]] = median[has].astype(out.dtype)
    return out
