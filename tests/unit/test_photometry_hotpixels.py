"""Hot pixels (``photometry.hotpixels``): found in an observation's own frames, repaired
before the photometry, checked against hot pixels planted in the simulator's frames."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from panoptes_network.catalog import stars_in_footprint
from panoptes_network.photometry import measure_frame
from panoptes_network.photometry.hotpixels import as_flat, hot_pixel_map, repair, spikes
from panoptes_network.simulator import camera, sequence_specs, simulate_frame
from panoptes_network.simulator.frame import digitise

WHEN = datetime(2024, 8, 10, 8, 0, tzinfo=timezone.utc)
FIELD = (300.18, 22.71)
FRAMES = 10
PLANTED = 400  # hot pixels on the 700 x 500 cut-out: ~1,100 per megapixel, a real camera's rate


@pytest.fixture(scope="module")
def scene():
    """A drifting sequence rendered without the simulator's hot pixels, then PLANTED hot
    pixels (80-3,000 ADU, log-uniform) added to each frame's expected electrons, one of them (800 ADU)
    4.5 px from a bright star's centre on the first frame, and each frame digitised again."""
    specs = sequence_specs(*FIELD, WHEN, FRAMES, width=700, height=500, drift_px=8.0, hot_pixels=False, seed=3)
    frames = [simulate_frame(spec) for spec in specs]
    rng = np.random.default_rng(11)
    xy = np.stack([rng.integers(0, 700, PLANTED), rng.integers(0, 500, PLANTED)], axis=1)
    table = frames[0].truth.stars
    inside = (table["x"] > 40) & (table["x"] < 660) & (table["y"] > 40) & (table["y"] < 460) & table["catalog"]
    bright = np.flatnonzero(inside & (table["mag"] > 8) & (table["mag"] < 9.5))[0]
    # behind the star as it drifts: in its aperture on the first frame, clear of it by the last
    # (one the star covered on every frame would not be found: it is never a spike)
    drift = np.array(specs[-1].drift_px) / np.hypot(*specs[-1].drift_px)
    on_star = tuple(int(v) for v in np.rint(np.array([table["x"][bright], table["y"][bright]]) - 4.5 * drift))
    # a pair of hot pixels side by side (same colour, 2 px apart) where no star shines
    starlight = frames[0].truth.expected - frames[0].truth.sky
    quiet = [(x, y) for y in range(100, 400, 10) for x in range(100, 600, 10) if starlight[y - 4:y + 5, x - 4:x + 7].max() < 5]
    pair = [quiet[0], (quiet[0][0] + 2, quiet[0][1])]
    xy = np.unique(np.vstack([xy[np.abs(xy - np.array(quiet[0])).max(axis=1) > 6], on_star, pair]), axis=0)
    adu = 10 ** rng.uniform(np.log10(80), np.log10(3000), len(xy))
    adu[(xy == on_star).all(axis=1)] = 800.0
    for hot in pair:
        adu[(xy == hot).all(axis=1)] = 400.0
    planted = np.zeros(frames[0].data.shape, np.float32)
    planted[xy[:, 1], xy[:, 0]] = adu * camera.GAIN
    data = [digitise(f.truth.expected + planted, [spec.seed, 0xAD0]) for f, spec in zip(frames, specs)]
    return {"frames": frames, "data": data, "xy": xy, "adu": adu, "on_star": on_star, "star": table["id"][bright],
            "planted": planted, "width": 700, "pair": pair}


def test_a_frames_spikes_are_nearly_all_hot_pixels(scene):
    """One frame's spikes: a few are noise on a star's wing (0-6 of ~360 here), which the
    map leaves out (they do not come back on a tenth of the frames)."""
    truth = set(as_flat(scene["xy"], scene["width"]).tolist())
    found = [spikes(d) for d in scene["data"]]
    for flat in found:
        assert len(set(flat.tolist()) - truth) <= 0.03 * len(flat), sorted(set(flat.tolist()) - truth)[:5]
    # most of them on each frame (not those on stars, nor the faintest under the noise)
    assert np.mean([len(f) for f in found]) > 0.8 * len(truth)


def test_the_map_of_an_observation_finds_its_hot_pixels_even_on_a_star(scene):
    truth = as_flat(scene["xy"], scene["width"])
    mapped = hot_pixel_map([spikes(d) for d in scene["data"]])
    assert set(mapped.tolist()) <= set(truth.tolist())  # none false
    # every one clear of the noise (here sky ~160 ADU, ~15 ADU rms), the one on the star too
    clear = truth[scene["adu"] > 100]
    assert np.isin(clear, mapped).mean() > 0.95, np.isin(clear, mapped).mean()
    assert as_flat(np.array([scene["on_star"]]), scene["width"])[0] in mapped
    assert np.isin(as_flat(np.array(scene["pair"]), scene["width"]), mapped).all()  # each beside the other


def test_pairs_on_a_real_frame_are_few():
    """A pair counts only if the other colours beside it are dark: on the real unsolved.fits,
    without that test the pairs were 3,300 per megapixel (faint stars sharp in one direction),
    with it ~120 of its ~7,000 spikes per megapixel."""
    from panoptes_network.fits import read_image
    from panoptes_network.photometry.hotpixels import NEIGHBOURS
    from tests.conftest import POCS_DATA

    with open(f"{POCS_DATA}/unsolved.fits", "rb") as handle:
        data = read_image(handle.read())[1]
    found = spikes(data)
    y, x = np.divmod(found, data.shape[1])
    beside = np.zeros(len(found), bool)
    for a, b in NEIGHBOURS:
        beside |= np.isin((y + 2 * a) * data.shape[1] + x + 2 * b, found)
    assert len(found) / (data.size / 1e6) > 5000
    assert 0 < beside.sum() / (data.size / 1e6) < 400, beside.sum() / (data.size / 1e6)


def test_a_noise_free_frame_without_hot_pixels_is_unchanged():
    """No star pixel is a spike: a noise-free frame's stars (bright, saturated, faint) give none,
    so its map is empty and its repair changes nothing."""
    spec = sequence_specs(*FIELD, WHEN, 1, width=700, height=500, hot_pixels=False, seed=3)[0]
    frame = simulate_frame(spec)
    data = np.clip(np.rint(frame.truth.expected / camera.GAIN + camera.BIAS_ADU), 0,
                   camera.SATURATION_ADU).astype(np.uint16)
    assert (frame.truth.stars["peak_electrons"] > 20_000).any()  # bright stars, some saturated
    found = spikes(data)
    assert len(found) == 0, found[:5]
    mapped = hot_pixel_map([found, found, found])
    assert np.array_equal(repair(data, mapped), data)


def test_a_repaired_frame_gives_a_star_its_flux_back(scene):
    """The noise-free first frame with the planted hot pixels: the star with one 4.5 px from
    its centre measures as on the frame without them once measure_frame repairs the mapped
    pixels (its Calibrate stage)."""
    frame = scene["frames"][0]
    clean = frame.truth.expected / camera.GAIN + camera.BIAS_ADU
    with_hot = clean + scene["planted"] / camera.GAIN
    mapped = hot_pixel_map([spikes(d) for d in scene["data"]])
    stars = stars_in_footprint(wcs=frame.truth.wcs, shape=clean.shape)
    star = list(stars["id"]).index(scene["star"])
    truth, hot = (measure_frame(d, frame.header, frame.truth.wcs, stars) for d in (clean, with_hot))
    before = with_hot.copy()
    repaired = measure_frame(with_hot, frame.header, frame.truth.wcs, stars, hot_pixels=mapped)
    assert repaired.hot_pixels_repaired == len(mapped) > 300 and truth.hot_pixels_repaired == 0
    assert np.array_equal(with_hot, before)  # the caller's pixels are left alone
    sigma = truth.flux_err_e[star]  # the noise model's, for a noisy frame
    x, y = scene["on_star"]
    channel = camera.CHANNEL_OF[y % 2, x % 2]
    assert (hot.flux_e[star, channel] - truth.flux_e[star, channel]) / sigma[channel] > 3  # in the aperture
    # back within a fifth of the noise (the neighbours' median on the star's wing is not its exact value)
    assert (np.abs(repaired.flux_e[star] - truth.flux_e[star]) / sigma < 0.2).all(), \
        (repaired.flux_e[star] - truth.flux_e[star]) / sigma


def test_the_map_wants_a_pixel_on_a_tenth_of_the_frames_and_twice_at_least():
    one_frame = [np.array([5, 7])] + [np.array([7])] + [np.array([], np.int64)] * 18  # 20 frames
    assert hot_pixel_map(one_frame).tolist() == [7]  # 5: once, a cosmic ray; 7: twice, a tenth of 20
    assert hot_pixel_map([np.array([5])] * 3, frames=40).tolist() == []  # 3 of 40 is under a tenth
    assert hot_pixel_map([np.array([5])]).tolist() == []  # one frame maps nothing
    assert hot_pixel_map([]).tolist() == []


def test_repair_uses_the_same_colour_neighbours_that_are_not_hot():
    data = np.arange(100, dtype=np.uint16).reshape(10, 10) * 0 + 100
    data[4, 4], data[4, 6], data[2, 2] = 5000, 4000, 130  # two hot neighbours; one neighbour 130
    out = repair(data, np.array([44, 46]))
    assert out[4, 4] == 100 and out[4, 6] == 100  # neither takes the other's value
    corner = repair(data, np.array([0]))  # three neighbours on the frame
    assert corner[0, 0] == 100
    assert np.array_equal(np.delete(out.ravel(), [44, 46]), np.delete(data.ravel(), [44, 46]))


def test_spike_counts_make_the_same_map_frame_by_frame():
    from panoptes_network.photometry.hotpixels import SpikeCounts

    rng = np.random.default_rng(4)
    frames = [np.unique(rng.integers(0, 600, 40)) for _ in range(23)]  # a 20 x 30 frame
    counts = SpikeCounts()
    for flat in frames:
        counts.add((20, 30), flat)
    expected = hot_pixel_map(frames)
    assert len(expected) > 0 and np.array_equal(counts.hot_pixel_map((20, 30)), expected)
    assert counts.hot_pixel_map((40, 30)).tolist() == []  # no frame of that shape
