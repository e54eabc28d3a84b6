"""The solve stages on small fake frames with known truth, one stage at a time."""

from __future__ import annotations

import numpy as np

from panoptes_network.solve.frame import Frame
from panoptes_network.solve.stages import BIAS_ADU, Calibrate, Detect


def bayer_frame(positions, colour, size=256, sigma=1.3, flux=60000.0, seed=4) -> np.ndarray:
    """An RGGB mosaic with round stars at ``positions`` (0-based x, y), each channel's pixels
    seeing the star at their own places, weighted by ``colour`` (R, G, B)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(float)
    weights = np.empty((size, size))
    weights[0::2, 0::2], weights[0::2, 1::2], weights[1::2, 0::2], weights[1::2, 1::2] = \
        colour[0], colour[1], colour[1], colour[2]
    light = sum(np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma**2)) for px, py in positions)
    electrons = flux / (2 * np.pi * sigma**2) * light * weights + 200.0
    return (BIAS_ADU + rng.poisson(electrons) + rng.normal(0, 5, electrons.shape)).astype(np.float32)


def detected(data: np.ndarray) -> np.ndarray:
    frame = Frame(raw=b"", data=data)
    for stage in (Calibrate(), Detect()):
        stage.run(frame)
    assert not frame.failed, frame.reason
    return frame.stars


def nearest_offsets(stars, positions) -> np.ndarray:
    offsets = []
    for px, py in positions:
        index = np.argmin(np.hypot(stars["x"] - px, stars["y"] - py))
        offsets.append((stars["x"][index] - px, stars["y"][index] - py))
    return np.array(offsets)


def test_detected_centroids_of_red_and_blue_stars_land_on_the_truth():
    rng = np.random.default_rng(7)
    positions = [(40 + 60 * i + rng.uniform(0, 1), 40 + 60 * j + rng.uniform(0, 1)) for i in range(3) for j in range(3)]
    for colour in ((1.0, 0.35, 0.05), (0.1, 0.4, 1.0)):  # a red star's light is on the R pixels, a blue one's on B
        offsets = nearest_offsets(detected(bayer_frame(positions, colour)), positions)
        # Without the per-channel correction a star this red or blue is a fifth of a pixel off
        # along the diagonal; with it, a few hundredths.
        assert np.abs(offsets).max() < 0.05, offsets
