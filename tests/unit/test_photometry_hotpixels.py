"""Hot pixels (``photometry.hotpixels``): found in an observation's own frames, repaired
before the photometry, checked against hot pixels planted in the simulator's frames."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from panoptes_network.catalog import stars_in_footprint
from panoptes_network.photometry import hotpixels, measure_frame
from panoptes_network.photometry.hotpixels import (HotPixelMap, SpikeCounts, as_flat, frame_spikes, hot_pixel_map,
                                                   remove, repair, spikes)
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
    4.5 px from a bright star's centre on the first frame, and each frame digitised again. On
    empty sky: a pair side by side (same colour), three together and a faint one beside a bright one."""
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
    # three side by side (an L of same-colour pixels), and a faint one beside a bright one
    far = next(q for q in quiet if min(abs(q[0] - quiet[0][0]), abs(q[1] - quiet[0][1])) > 20)
    group = [far, (far[0] + 2, far[1]), (far[0] + 2, far[1] + 2)]
    last = next(q for q in quiet[::-1] if min(np.abs(np.array(q) - np.array(p)).max() for p in (quiet[0], far)) > 20)
    uneven = [last, (last[0], last[1] + 2)]
    special = pair + group + uneven
    clear = np.min([np.abs(xy - np.array(p)).max(axis=1) for p in special], axis=0) > 6
    xy = np.unique(np.vstack([xy[clear], on_star, special]), axis=0)
    adu = 10 ** rng.uniform(np.log10(80), np.log10(3000), len(xy))
    adu[(xy == on_star).all(axis=1)] = 800.0
    for hot, level in zip(special, (400, 400, 300, 250, 200, 5000, 200)):
        adu[(xy == hot).all(axis=1)] = level
    planted = np.zeros(frames[0].data.shape, np.float32)
    planted[xy[:, 1], xy[:, 0]] = adu * camera.GAIN
    data = [digitise(f.truth.expected + planted, [spec.seed, 0xAD0]) for f, spec in zip(frames, specs)]
    return {"frames": frames, "data": data, "xy": xy, "adu": adu, "on_star": on_star, "star": table["id"][bright],
            "planted": planted, "width": 700, "pair": pair, "group": group, "uneven": uneven}


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
    assert np.isin(as_flat(np.array(scene["group"]), scene["width"]), mapped).all()  # three together
    assert np.isin(as_flat(np.array(scene["uneven"]), scene["width"]), mapped).all()  # 200 ADU beside 5,000


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


def own_map(data):
    counts = SpikeCounts()
    for d in data:
        counts.add(d.shape, *frame_spikes(d))
    return counts.hot_pixel_map(data[0].shape)


def test_a_frame_with_its_hot_pixels_removed_gives_a_star_its_flux_back(scene):
    """The noise-free first frame with the planted hot pixels: the star with one 4.5 px from
    its centre measures as on the frame without them once measure_frame takes the mapped
    pixels' levels off (its Calibrate stage), each level measured on the noisy frames."""
    frame = scene["frames"][0]
    clean = frame.truth.expected / camera.GAIN + camera.BIAS_ADU
    with_hot = clean + scene["planted"] / camera.GAIN
    mapped = own_map(scene["data"])
    stars = stars_in_footprint(wcs=frame.truth.wcs, shape=clean.shape)
    star = list(stars["id"]).index(scene["star"])
    truth, hot = (measure_frame(d, frame.header, frame.truth.wcs, stars) for d in (clean, with_hot))
    before = with_hot.copy()
    repaired = measure_frame(with_hot, frame.header, frame.truth.wcs, stars, hot_pixels=mapped)
    assert repaired.hot_pixels_repaired == len(mapped) > 300 and truth.hot_pixels_repaired == 0
    assert repaired.hot_pixel_scale == pytest.approx(1, abs=0.01)  # the frames' own levels
    assert np.array_equal(with_hot, before)  # the caller's pixels are left alone
    sigma = truth.flux_err_e[star]  # the noise model's, for a noisy frame
    x, y = scene["on_star"]
    channel = camera.CHANNEL_OF[y % 2, x % 2]
    assert (hot.flux_e[star, channel] - truth.flux_e[star, channel]) / sigma[channel] > 3  # in the aperture
    # back within a fifth of the noise (each level is a mean over ten noisy frames)
    assert (np.abs(repaired.flux_e[star] - truth.flux_e[star]) / sigma < 0.2).all(), \
        (repaired.flux_e[star] - truth.flux_e[star]) / sigma


def test_a_hot_pixel_on_a_stars_core_keeps_the_stars_light():
    """Taking a hot pixel's level off leaves the starlight on it; replacing the pixel by its
    same-colour neighbours (2 px away, far down a star's core) took most of it. Noise-free,
    a G ~9 star with a 1,000 ADU hot pixel on its brightest pixel, among 400 others on the sky
    (which set the frame's scale), each level known: removed, the star measures as without;
    replaced, it loses many sigmas (here 0.000 and 9.4). With the hot pixels under stars mapped through the
    camera's other fields, replacing made false dips of 12 sigma as the stars drifted over them."""
    spec = sequence_specs(*FIELD, WHEN, 1, width=700, height=500, hot_pixels=False, seed=3)[0]
    frame = simulate_frame(spec)
    clean = frame.truth.expected / camera.GAIN + camera.BIAS_ADU
    table = frame.truth.stars
    inside = (table["x"] > 40) & (table["x"] < 660) & (table["y"] > 40) & (table["y"] < 460) & table["catalog"]
    bright = np.flatnonzero(inside & (table["mag"] > 8.5) & (table["mag"] < 9.5))[0]
    x0, y0 = int(round(table["x"][bright])), int(round(table["y"][bright]))
    core = max(((x, y) for x in range(x0 - 1, x0 + 2) for y in range(y0 - 1, y0 + 2)), key=lambda p: clean[p[1], p[0]])
    rng = np.random.default_rng(5)
    sky = np.stack([rng.integers(10, 690, 400), rng.integers(10, 490, 400)], axis=1)
    sky = sky[np.hypot(*(sky - [x0, y0]).T) > 30]
    xy = np.vstack([[core], sky])
    levels = np.r_[1000.0, rng.uniform(250, 2000, len(sky))].astype(np.float32)
    flat = as_flat(xy, 700)
    order = np.argsort(flat)
    with_hot = clean.copy()
    with_hot.ravel()[flat] += levels
    stars = stars_in_footprint(wcs=frame.truth.wcs, shape=clean.shape)
    star = list(stars["id"]).index(table["id"][bright])
    channel = camera.CHANNEL_OF[core[1] % 2, core[0] % 2]
    truth = measure_frame(clean, frame.header, frame.truth.wcs, stars)
    sigma = truth.flux_err_e[star, channel]
    removed = measure_frame(with_hot, frame.header, frame.truth.wcs, stars,
                            hot_pixels=HotPixelMap(flat[order], levels[order]))
    replaced = measure_frame(repair(with_hot, flat), frame.header, frame.truth.wcs, stars)
    assert abs(removed.flux_e[star, channel] - truth.flux_e[star, channel]) / sigma < 0.1
    assert (truth.flux_e[star, channel] - replaced.flux_e[star, channel]) / sigma > 5, \
        (truth.flux_e[star, channel] - replaced.flux_e[star, channel]) / sigma


@pytest.mark.parametrize("sample", [None, 40], ids=["every bright one", "the brightest 40"])
def test_a_frames_hot_pixels_are_removed_at_its_own_scale(sample, monkeypatch):
    """Dark current moves with the sensor's temperature: a frame whose hot pixels are 15%
    brighter than the map's levels has them removed at 1.15, so the sky is left flat; a
    saturated one is left as it is (for the saturation flag). A full frame's scale is read
    from its brightest hot pixels only (``SCALE_SAMPLE``); every one is still removed."""
    if sample is not None:
        monkeypatch.setattr(hotpixels, "SCALE_SAMPLE", sample)
    rng = np.random.default_rng(8)
    data = rng.normal(2200, 12, (200, 300)).astype(np.float32)
    flat = np.unique(rng.integers(0, data.size, 300))
    levels = rng.uniform(250, 3000, len(flat)).astype(np.float32)
    data.ravel()[flat] += 1.15 * levels
    data.ravel()[flat[0]] = camera.SATURATION_ADU
    out, scale, removed = remove(np.rint(data).astype(np.uint16), HotPixelMap(flat, levels))
    assert scale == pytest.approx(1.15, abs=0.005) and removed == len(flat) - 1
    assert out.ravel()[flat[0]] == camera.SATURATION_ADU
    assert np.abs(out.ravel()[flat[1:]].astype(float) - 2200).max() < 80  # 12 ADU noise, and the neighbours'


def test_a_faint_hot_pixel_seen_only_on_warm_frames_keeps_its_level_beside_the_bright_ones():
    """Dark current follows the sensor's temperature. On frames in turn cold (x0.5) and warm
    (x2), a faint hot pixel (a tenth of the bright ones) is a spike on the warm ones only: its
    level in the map stays a tenth of theirs, not the warm frames' excess over their mean (0.16),
    so a frame's scale, read from the bright ones, takes each one off whole."""
    bright, faint, shape = np.arange(100, 450, 7), 5, (100, 100)
    counts = SpikeCounts()
    for k in range(20):
        warm = k % 2 == 1  # a cold frame first
        scale = 2.0 if warm else 0.5
        counts.add(shape, np.append(bright, faint) if warm else bright,
                   np.append(np.full(len(bright), 1000 * scale), 100 * scale) if warm else np.full(len(bright), 1000 * scale))
    hot = counts.hot_pixel_map(shape)
    level = dict(zip(hot.pixels.tolist(), hot.levels.tolist()))
    assert level[faint] / level[int(bright[0])] == pytest.approx(0.1, rel=1e-4)
    frame = np.full(shape, 2100, np.uint16)
    frame.ravel()[bright] += 2000
    frame.ravel()[faint] += 200
    out, _, removed = remove(frame, hot)
    assert removed == len(bright) + 1 and np.all(out == 2100)


def test_a_hot_pixel_that_saturates_on_the_warm_frames_is_measured_on_the_cold_ones():
    """A hot pixel of 11,000 ADU (at scale 1) on a 2,200 ADU sky saturates (11,530) on the warm
    frames: its excess there is only a floor. Its level comes from the cold frames alone, so
    the cold frames, where it is taken off, are left at the sky; one that saturates on every
    frame it is a spike on has no level and is left as it is. Noise: 12 ADU a pixel; the
    level's error is the cold frames' mean of ~12 ADU draws (the neighbours' median is sharper)."""
    rng = np.random.default_rng(8)
    shape, sky = (60, 60), 2200.0
    bright = np.array([as_flat((x, y), 60)[0] for x in range(4, 56, 6) for y in range(4, 56, 6)])  # 81, 1,000 ADU
    strong, always = as_flat((31, 31), 60)[0], as_flat((41, 31), 60)[0]
    scales = np.tile([0.5, 0.7, 1.4, 2.0], 5)  # cold and warm in turn
    frames = []
    for scale in scales:
        frame = rng.normal(sky, 12, shape)
        frame.ravel()[bright] += 1000 * scale
        frame.ravel()[strong] += 11000 * scale  # saturated from scale 0.85
        frame.ravel()[always] += 40000
        frames.append(np.clip(np.rint(frame), 0, camera.SATURATION_ADU).astype(np.uint16))
    counts = SpikeCounts()
    for frame in frames:
        counts.add(shape, *frame_spikes(frame))
    hot = counts.hot_pixel_map(shape)
    level = dict(zip(hot.pixels.tolist(), hot.levels.tolist()))
    typical = float(np.median(scales))  # the map's levels are at the frames' median dark current
    assert level[int(strong)] / (11000 * typical) == pytest.approx(1, abs=0.005)
    assert np.isnan(level[int(always)])
    for frame, scale in zip(frames, scales):
        out, _, _ = remove(frame, hot)
        if scale < 0.85:
            assert abs(float(out.ravel()[strong]) - sky) < 60, (scale, out.ravel()[strong])
        else:
            assert out.ravel()[strong] == frame.ravel()[strong] >= 0.98 * camera.SATURATION_ADU
        assert out.ravel()[always] == frame.ravel()[always]


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
    rng = np.random.default_rng(4)
    frames = [np.unique(rng.integers(0, 600, 40)) for _ in range(23)]  # a 20 x 30 frame
    counts = SpikeCounts()
    for flat in frames:
        counts.add((20, 30), flat)
    expected = hot_pixel_map(frames)
    assert len(expected) > 0 and np.array_equal(counts.hot_pixel_map((20, 30)).pixels, expected)
    assert len(counts.hot_pixel_map((40, 30))) == 0  # no frame of that shape


def test_the_camera_map_takes_the_pixels_most_of_its_other_observations_agree_on():
    """Joined when 0.3 of the others mapped them; each joined level brought to this
    observation's scale by the bright hot pixels it shares with that other map."""
    from panoptes_network.photometry.hotpixels import camera_map

    shared = np.arange(100, 130)  # 30 bright hot pixels every map holds: they set the scales
    base = np.linspace(300, 900, 30).astype(np.float32)

    def hot(extra, extra_levels, scale):
        pixels = np.r_[shared, extra].astype(np.int64)
        levels = np.r_[base * scale, extra_levels].astype(np.float32)
        order = np.argsort(pixels)
        return HotPixelMap(pixels[order], levels[order])

    own = hot([9, 3], [50, 60], 1.0)
    others = [hot([1, 2], [110, 400], 0.5), hot([1], [90, ], 0.5), hot([1, 5], [200, 70], 1.0),
              hot([2, 7], [200, 80], 0.5)]  # 0.3 of 4: 2 votes needed
    joined = camera_map(own, others)
    assert np.setdiff1d(joined.pixels, shared).tolist() == [1, 2, 3, 9]  # 5 and 7 once each: a star's peak
    at = dict(zip(joined.pixels.tolist(), joined.levels.tolist()))
    assert at[1] == pytest.approx(200) and at[2] == pytest.approx(600)  # medians of 220, 180, 200 and 800, 400
    assert at[3] == 60 and at[9] == 50 and at[100] == pytest.approx(300)  # the own levels stay
    assert np.setdiff1d(camera_map(own, others[:3]).pixels, shared).tolist() == [1, 2, 3, 5, 9]  # 0.3 of 3: 1
    assert camera_map(own, []) is own


def test_an_observation_map_keeps_what_it_was_made_from():
    from panoptes_network.photometry.hotpixels import ObservationMap

    made = ObservationMap("PAN001_14d3bd_20240810T080000", (400, 600), 12,
                          HotPixelMap(np.array([4, 8, 239_999]), np.array([70.5, 900, 3000], np.float32)))
    back = ObservationMap.from_bytes(made.to_bytes())
    assert (back.sequence_id, back.shape, back.frames) == (made.sequence_id, made.shape, made.frames)
    assert back.map.pixels.tolist() == [4, 8, 239_999] and back.map.levels.tolist() == [70.5, 900, 3000]
    with pytest.raises(ValueError, match="not a hot-pixel map"):
        ObservationMap.from_bytes(b"not a map")
    with pytest.raises(ValueError, match="not a hot-pixel map"):  # pixels off a frame of its shape
        ObservationMap.from_bytes(ObservationMap("x", (4, 6), 2, HotPixelMap(np.array([24]), np.ones(1))).to_bytes())


def test_the_cameras_other_fields_find_the_hot_pixels_a_star_covers_all_night():
    """At a real camera's rate (the simulator's, measured on a real frame), an observation's
    own map misses the hot pixels under its stars' light (a star lifts their neighbours, so
    they are never spikes). The camera's other observations, of other fields, see them on
    empty sky: joined with theirs (truth.camera_history: 3 earlier nights, 8 frames each),
    the map finds nearly all of them, and still nothing that is not a hot pixel."""
    from panoptes_network.photometry.hotpixels import camera_map
    from panoptes_network.photometry.truth import camera_history
    from panoptes_network.simulator.frame import hot_pixels

    width, height = 700, 500
    specs = sequence_specs(*FIELD, WHEN, FRAMES, width=width, height=height, drift_px=3.0, seed=3)
    frames = [simulate_frame(spec) for spec in specs]
    own = own_map([f.data for f in frames])
    mapped = camera_map(own, camera_history(specs[0].camera_id, specs[0].unit_id, width, height, WHEN))
    own, mapped = own.pixels, mapped.pixels
    xy, rates = hot_pixels(specs[0].camera_id, width, height)
    truth = as_flat(xy, width)
    adu = rates * specs[0].exptime / camera.GAIN
    # a star's light on their same-colour neighbours (2 px away) over a third of their own, on the first frame
    bare = simulate_frame(replace(specs[0], hot_pixels=False)).truth
    starlight = np.pad(bare.expected - bare.sky, 2)  # electrons
    x, y = xy[:, 0] + 2, xy[:, 1] + 2
    lift = np.mean([starlight[y, x - 2], starlight[y, x + 2], starlight[y - 2, x], starlight[y + 2, x]], axis=0)
    covered = (lift > adu * camera.GAIN / 3) & (adu > 150)
    assert covered.sum() >= 20, covered.sum()
    assert set(mapped.tolist()) <= set(truth.tolist())
    # here: of 52 covered, the own map finds 2% and the camera's 98%; of all 1,588 over 150 ADU,
    # 92.4% and 98.8% (each of the 19 left has a hot same-colour neighbour: never a spike, nor a pair)
    assert np.isin(truth[covered], own).mean() < 0.5, np.isin(truth[covered], own).mean()
    assert np.isin(truth[covered], mapped).mean() > 0.9, np.isin(truth[covered], mapped).mean()
    assert np.isin(truth[adu > 150], mapped).mean() > 0.97, np.isin(truth[adu > 150], mapped).mean()
