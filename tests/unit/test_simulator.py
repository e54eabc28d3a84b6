"""The sky simulator: stars land where the truth WCS puts them, the pixels' noise is the
noise model's, a seed renders one frame only, and injected signals are in the truth."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network.simulator import FrameSpec, Transit, Variable, camera, noise, simulate_frame
from panoptes_network.simulator.frame import _separation
from panoptes_network.simulator.night import sequence_specs
from tests.conftest import POCS_DATA

WHEN = datetime(2024, 3, 10, 12, 30, tzinfo=timezone.utc)  # Mauna Loa, 02:30 local, Moon down
FIELD = (150.0, 20.0)  # near the meridian then, high latitude: a sparse field


@pytest.fixture(scope="module")
def frame():
    return simulate_frame(FrameSpec(ra=FIELD[0], dec=FIELD[1], time=WHEN, width=900, height=600, seed=7,
                                    rotation_deg=30.0))


def _electrons(frame) -> np.ndarray:
    """The pixels back in electrons above the bias."""
    return (frame.data.astype(float) - camera.BIAS_ADU) * camera.GAIN


def test_truth_positions_are_astropys_world2pix(frame):
    stars = frame.truth.stars
    x, y = frame.truth.wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    assert len(stars) > 100
    assert np.abs(x - stars["x"]).max() < 1e-6 and np.abs(y - stars["y"]).max() < 1e-6
    # and the distortion is there: a few px at a full frame's corner
    full = camera.truth_wcs(*FIELD, 0.0, camera.FULL_WIDTH, camera.FULL_HEIGHT)
    ra, dec = full.all_pix2world([[0.0, 0.0]], 0)[0]
    tan_only = np.array(full.wcs_world2pix([[ra, dec]], 0)[0])
    assert 2.0 < np.hypot(*tan_only) < 5.0


def test_stars_land_where_the_truth_wcs_puts_them(frame):
    """The centroid of each isolated, unsaturated bright star's green pixels (sky from the
    truth subtracted, hot pixels left out) sits on the truth x, y within 5 sigma of the centroid's own noise,
    sigma from the noise model: var(x_c) = sum((x_i - x)^2 var_i) / F^2."""
    stars = frame.truth.stars
    electrons = _electrons(frame) - frame.truth.sky
    variance = noise.pixel_variance(frame.truth.expected)
    green = camera.channel_map(*frame.data.shape) == camera.G
    green[frame.truth.hot_pixels[:, 1], frame.truth.hot_pixels[:, 0]] = False  # the camera's, not the star's
    half = 10
    checked = 0
    for star in stars[stars["catalog"] & ~stars["saturated"] & (stars["electrons_g"] > 20_000)]:
        x0, y0 = int(round(star["x"])), int(round(star["y"]))
        if not (half <= x0 < frame.data.shape[1] - half and half <= y0 < frame.data.shape[0] - half):
            continue
        others = stars[(np.abs(stars["x"] - star["x"]) < 2 * half) & (np.abs(stars["y"] - star["y"]) < 2 * half)]
        if np.sum(others["electrons_g"]) > 1.001 * star["electrons_g"]:
            continue  # a neighbour's light would pull the centroid
        box = (slice(y0 - half, y0 + half + 1), slice(x0 - half, x0 + half + 1))
        weight = np.where(green[box], electrons[box], 0.0)
        rows, columns = np.mgrid[box]
        flux = weight.sum()
        x_c, y_c = (weight * columns).sum() / flux, (weight * rows).sum() / flux
        sigma_x = np.sqrt((np.where(green[box], variance[box], 0) * (columns - star["x"]) ** 2).sum()) / flux
        sigma_y = np.sqrt((np.where(green[box], variance[box], 0) * (rows - star["y"]) ** 2).sum()) / flux
        assert abs(x_c - star["x"]) < 5 * sigma_x + 0.01, (star["id"], x_c, star["x"], sigma_x)
        assert abs(y_c - star["y"]) < 5 * sigma_y + 0.01, (star["id"], y_c, star["y"], sigma_y)
        checked += 1
    assert checked >= 5


def test_pixel_noise_is_the_noise_models(frame):
    """chi^2 per pixel of (data - expected) over the model's variance is 1 within 5 of its
    standard errors (sqrt(2/N)), over all unsaturated pixels; and a blank patch's variance
    is sky + read + digitisation."""
    saturated = frame.data >= camera.SATURATION_ADU
    residual = _electrons(frame) - frame.truth.expected
    chi2 = residual[~saturated] ** 2 / noise.pixel_variance(frame.truth.expected[~saturated])
    assert abs(chi2.mean() - 1) < 5 * np.sqrt(2 / chi2.size)
    mean_variance = noise.pixel_variance(frame.truth.expected[~saturated]).mean()
    assert abs(residual[~saturated].mean()) < 5 * np.sqrt(mean_variance / chi2.size)

    blank = (frame.truth.expected - frame.truth.sky < 0.01) & ~saturated
    assert blank.sum() > 10_000
    sky_model = noise.pixel_variance(frame.truth.sky[blank]).mean()
    measured = residual[blank].var()
    assert measured == pytest.approx(sky_model, rel=5 * np.sqrt(2 / blank.sum()))


def test_same_seed_same_frame_and_a_new_seed_a_new_one(frame):
    again = simulate_frame(frame.spec)
    assert again.to_fits_bytes() == frame.to_fits_bytes()
    other = simulate_frame(replace(frame.spec, seed=8))
    assert not np.array_equal(other.data, frame.data)
    # the sky does not depend on the seed: the same stars, with the same colours
    assert list(other.truth.stars["id"]) == list(frame.truth.stars["id"])
    assert np.array_equal(other.truth.stars["bp_rp"], frame.truth.stars["bp_rp"])


def test_a_noiseless_frame_is_its_expectation_in_adu(frame):
    """For a pipeline's own systematics: the same stars, sky, signals and hot pixels, with
    neither pixel noise nor scintillation; each pixel its expectation, rounded."""
    quiet = simulate_frame(replace(frame.spec, noiseless=True))
    assert np.all(quiet.truth.stars["scintillation"] == 1) and np.any(frame.truth.stars["scintillation"] != 1)
    assert np.array_equal(quiet.truth.sky, frame.truth.sky)
    assert np.array_equal(quiet.truth.stars["electrons_g"], frame.truth.stars["electrons_g"])
    adu = quiet.truth.expected.astype(float) / camera.GAIN + camera.BIAS_ADU
    below = adu < camera.SATURATION_ADU - 1
    assert np.abs(quiet.data[below] - adu[below]).max() <= 0.5 + 1e-3
    assert np.all(quiet.data[adu >= camera.SATURATION_ADU] == camera.SATURATION_ADU)
    assert np.abs(frame.data.astype(float) - adu).max() > 10  # the noisy frame is not


def test_header_is_a_units_with_the_mount_off_the_truth(frame):
    with astropy_fits.open(io.BytesIO(frame.to_fits_bytes())) as hdus:
        header, data = hdus[0].header, hdus[0].data
    assert data.dtype == np.uint16 and np.array_equal(data, frame.data)
    assert header["BZERO"] == 32768 and header["EXPTIME"] == 120.0
    assert not any(key.startswith(("CTYPE", "CRVAL", "CD1_", "A_")) for key in header)
    offset = float(_separation(header["RA-MNT"], header["DEC-MNT"], *FIELD))
    assert 0.5 <= offset <= 2.0
    assert header["DATE-OBS"] == WHEN.strftime("%Y-%m-%dT%H:%M:%S")


def test_an_injected_transit_is_in_the_truth_and_the_pixels(frame):
    """The same frame with a 1% transit at full depth on one star: the truth's electrons
    drop by exactly 1%, and so does the star's light in the pixels (the noise draws are
    the same, so the difference is the signal plus a tiny change of noise scale)."""
    stars = frame.truth.stars
    candidates = stars[stars["catalog"] & ~stars["saturated"]]
    target = candidates[np.argmax(candidates["electrons_g"])]
    transit = Transit(int(target["id"]), epoch=frame.spec.mid_exposure + timedelta(days=3 * 2.5), period_days=2.5,
                      depth=0.01, duration_hours=2.0)
    dimmed = simulate_frame(replace(frame.spec, signals=(transit,)))
    row = dimmed.truth.stars[dimmed.truth.stars["id"] == target["id"]][0]
    assert row["signal"] == pytest.approx(0.99)
    for channel in ("electrons_r", "electrons_g", "electrons_b"):
        assert row[channel] / target[channel] == pytest.approx(0.99, rel=1e-9)
    box = (slice(int(target["y"]) - 12, int(target["y"]) + 13), slice(int(target["x"]) - 12, int(target["x"]) + 13))
    lost = (_electrons(frame)[box] - _electrons(dimmed)[box]).sum()
    star_total = target["electrons_r"] + target["electrons_g"] + target["electrons_b"]
    assert lost == pytest.approx(0.01 * star_total * target["scintillation"], rel=0.1)


def test_transit_shape_box_and_trapezoid():
    epoch = datetime(2024, 1, 1, tzinfo=timezone.utc)
    trapezoid = Transit(1, epoch, period_days=3.0, depth=0.02, duration_hours=2.0, ingress_fraction=0.25)
    box = replace(trapezoid, ingress_fraction=0.0)
    at = lambda hours: epoch + timedelta(days=6.0, hours=hours)  # two periods later
    assert trapezoid.factor(at(0)) == box.factor(at(0)) == pytest.approx(0.98)
    assert trapezoid.factor(at(-0.75)) == pytest.approx(0.99)  # halfway through the 30 min ingress
    assert box.factor(at(-0.75)) == pytest.approx(0.98)
    assert trapezoid.factor(at(1.01)) == box.factor(at(-1.01)) == 1.0
    variable = Variable(2, epoch, period_days=0.5, amplitude=0.03)
    assert variable.factor(epoch + timedelta(days=10.125)) == pytest.approx(1.03)  # a quarter period after


def test_a_sequence_drifts_a_few_pixels_and_clouds_vary():
    specs = sequence_specs(*FIELD, WHEN, 40, seed=3, cloud=0.3, width=300, height=200)
    assert [spec.time for spec in specs] == [WHEN + timedelta(seconds=135 * n) for n in range(40)]
    assert len({spec.mount for spec in specs}) == 1
    drift = np.hypot(*np.subtract(specs[-1].drift_px, specs[0].drift_px))
    assert 0.5 < drift < 6
    transparency = [1 - spec.cloud for spec in specs]
    assert min(transparency) >= 0.7 and max(transparency) - min(transparency) > 0.15
    assert all(spec.conditions.airmass >= 1 for spec in specs)
    first, last = simulate_frame(specs[0]), simulate_frame(specs[-1])
    stars = first.truth.stars[first.truth.stars["catalog"]]
    moved = last.truth.stars[np.isin(last.truth.stars["id"], stars["id"])]
    shift = np.subtract(specs[-1].drift_px, specs[0].drift_px)
    assert np.allclose(moved["x"] - stars["x"], shift[0], atol=0.01)
    assert np.allclose(moved["y"] - stars["y"], shift[1], atol=0.01)


def test_the_psf_widens_and_stretches_along_the_radius_toward_the_corners():
    """One star rendered at the centre and one near a corner of a full frame: second
    moments of the noise-free light within 6-7 px (the core), along the radius and across it."""
    from panoptes_network.simulator.frame import _render_elliptical

    image = np.zeros((camera.FULL_HEIGHT, camera.FULL_WIDTH), np.float32)
    x, y = np.array([2603.5, 5150.0]), np.array([1737.5, 3420.0])
    _render_elliptical(image, x, y, np.full((2, 3), 1e5), camera.FULL_WIDTH, camera.FULL_HEIGHT, 4.5)
    spreads = []
    for star_x, star_y in zip(x, y):
        rows, columns = np.mgrid[int(star_y) - 6 : int(star_y) + 8, int(star_x) - 6 : int(star_x) + 8]
        light = image[rows, columns] / image[rows, columns].sum()
        radial = np.array([star_x - (camera.FULL_WIDTH - 1) / 2, star_y - (camera.FULL_HEIGHT - 1) / 2])
        radial = radial / np.hypot(*radial) if np.hypot(*radial) > 1 else np.array([1.0, 0.0])
        along = (columns - star_x) * radial[0] + (rows - star_y) * radial[1]
        across = -(columns - star_x) * radial[1] + (rows - star_y) * radial[0]
        spreads.append((np.sqrt((light * along**2).sum()), np.sqrt((light * across**2).sum())))
    (centre_along, centre_across), (corner_along, corner_across) = spreads
    assert centre_along == pytest.approx(centre_across, rel=0.02)
    assert corner_across > 1.1 * centre_across and corner_along > 1.1 * corner_across


def test_aperture_scatter_over_seeds_is_the_noise_models():
    """The same field rendered with 16 seeds: each isolated star's aperture sum (all its
    pixels within 6 px, the true sky subtracted) scatters with the variance that
    ``aperture_noise`` predicts (photon + sky + read + scintillation): over all the stars
    and seeds, mean(residual^2 / variance) is 1 within 5 of its standard errors. The
    bright stars, where scintillation is over 15% of the variance, pass on their own,
    and would fail without the scintillation term."""
    spec = FrameSpec(ra=FIELD[0], dec=FIELD[1], time=WHEN, width=1200, height=800, seed=0, hot_pixels=False)
    renders = [simulate_frame(replace(spec, seed=seed)) for seed in range(16)]
    first = renders[0]
    stars = first.truth.stars
    height, width = first.data.shape
    ratios, bright, bright_without_scintillation = [], [], []
    for star in stars[~stars["saturated"] & (stars["electrons_g"] > 3000)]:
        if not (12 < star["x"] < width - 12 and 12 < star["y"] < height - 12):
            continue
        near = np.hypot(stars["x"] - star["x"], stars["y"] - star["y"]) < 20
        if np.sum(stars["electrons_g"][near]) > 1.001 * star["electrons_g"]:
            continue  # a neighbour's light (with its own scintillation) in the aperture
        box = (slice(int(star["y"]) - 8, int(star["y"]) + 9), slice(int(star["x"]) - 8, int(star["x"]) + 9))
        rows, columns = np.mgrid[box]
        aperture = np.hypot(columns - star["x"], rows - star["y"]) <= 6
        star_light = (first.truth.expected[box] - first.truth.sky[box])[aperture].sum() / star["scintillation"]
        model = noise.aperture_noise(star_light, aperture.sum(), first.truth.sky[box][aperture].mean(), spec.exptime,
                                     star["airmass"], first.truth.site.elevation)
        sums = np.array([((_electrons(frame)[box] - frame.truth.sky[box])[aperture]).sum() for frame in renders])
        ratio = (sums - star_light) ** 2 / model.variance
        ratios.extend(ratio)
        if model.scintillation > 0.15 * model.variance:
            bright.extend(ratio)
            bright_without_scintillation.extend((sums - star_light) ** 2 / (model.variance - model.scintillation))
    assert len(ratios) >= 16 * 20 and len(bright) >= 16 * 3
    assert abs(np.mean(ratios) - 1) < 5 * np.sqrt(2 / len(ratios))
    assert abs(np.mean(bright) - 1) < 5 * np.sqrt(2 / len(bright))
    assert np.mean(bright_without_scintillation) - 1 > 4 * np.sqrt(2 / len(bright))


def test_bad_specs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="timezone-aware"):
        FrameSpec(ra=0, dec=0, time=datetime(2024, 3, 10, 12))
    with pytest.raises(ValueError, match="cloud"):
        FrameSpec(ra=0, dec=0, time=WHEN, cloud=1.0)
    with pytest.raises(ValueError, match="below PAN001's horizon"):
        simulate_frame(FrameSpec(ra=FIELD[0], dec=FIELD[1], time=WHEN + timedelta(hours=12), width=64, height=64))


def test_stamps_off_the_frame_add_only_their_pixels_on_it():
    from panoptes_network.simulator.frame import _accumulate, _stamp_grid

    image = np.zeros((20, 30), np.float32)
    px, py = _stamp_grid(np.array([-10.0, 28.6]), np.array([-9.0, 5.2]), 2)  # one wholly off, one half off
    values = np.ones((2, 5, 5), np.float32)
    _accumulate(image[:, :], px[:1], py[:1], values[:1])
    assert not image.any()
    _accumulate(image, px, py, values)
    assert image.sum() == 15 and image[3:8, 27:30].sum() == 15  # columns 27-29 of 27-31 are on the frame


def test_hot_pixels_belong_to_the_camera_and_a_cut_out_crops_them():
    from panoptes_network.simulator.frame import hot_pixels

    full, rates = hot_pixels("14d3bd", camera.FULL_WIDTH, camera.FULL_HEIGHT)
    megapixels = camera.FULL_WIDTH * camera.FULL_HEIGHT / 1e6
    assert 7_000 <= len(full) / megapixels <= 9_000  # a real camera's (see the next test)
    adu = rates * 120.4 / camera.GAIN
    assert adu.min() >= 59 and 500 <= np.sum(adu > 1000) / megapixels <= 800
    assert np.array_equal(hot_pixels("14d3bd", camera.FULL_WIDTH, camera.FULL_HEIGHT)[0], full)
    assert not np.array_equal(hot_pixels("ee04d1", camera.FULL_WIDTH, camera.FULL_HEIGHT)[0], full)
    cut, _ = hot_pixels("14d3bd", 2000, 1000)
    origin = np.array([(camera.FULL_WIDTH - 2000) // 2, (camera.FULL_HEIGHT - 1000) // 2])
    inside = np.all((full >= origin) & (full < origin + [2000, 1000]), axis=1)
    assert np.array_equal(cut, full[inside] - origin)


def test_a_simulated_frame_holds_the_hot_pixels_a_real_one_does():
    """Counted the same way on both (the photometry's isolated single-pixel spikes, each by its
    excess over its same-colour neighbours' median), a simulated frame and the real raw
    unsolved.fits (120 s, 11 C) hold as many hot pixels above each level, within 12%."""
    from panoptes_network.fits import read_image
    from panoptes_network.photometry.hotpixels import NEIGHBOURS, spikes

    def above(data, levels=(100, 150, 300, 1000, 2000)):  # above 2,000 ADU too few on 0.5 megapixel
        flat = spikes(data)
        y, x = np.divmod(flat, data.shape[1])
        height, width = data.shape
        around = np.median([data[np.clip(y + 2 * a, 0, height - 1), np.clip(x + 2 * b, 0, width - 1)]
                            for a, b in NEIGHBOURS], axis=0)
        excess = data.ravel()[flat].astype(float) - around
        return np.array([np.sum(excess > level) for level in levels]) / (data.size / 1e6)

    with open(f"{POCS_DATA}/unsolved.fits", "rb") as handle:
        real = above(read_image(handle.read())[1])
    frame = simulate_frame(FrameSpec(ra=FIELD[0], dec=FIELD[1], time=WHEN, width=700, height=700, seed=5,
                                     exptime=120.4, sensor_temp_c=11.0))
    simulated = above(frame.data)
    assert np.all(np.abs(simulated / real - 1) < 0.12), (simulated.round(), real.round())


def test_hot_pixels_double_every_few_degrees_of_the_sensors_temperature(frame):
    """Dark current follows the sensor's temperature, which CAMTEMP reads: the same hot pixels
    (and nothing else) twice as bright DARK_DOUBLING_C warmer."""
    from panoptes_network.simulator.frame import DARK_DOUBLING_C, HOT_PIXEL_TEMPERATURE_C

    def render(**change):
        return simulate_frame(replace(frame.spec, noiseless=True, **change))

    dark = render(sensor_temp_c=HOT_PIXEL_TEMPERATURE_C).truth.expected - render(hot_pixels=False).truth.expected
    warm = render(sensor_temp_c=HOT_PIXEL_TEMPERATURE_C + DARK_DOUBLING_C)
    places = len(np.unique(warm.truth.hot_pixels, axis=0))  # a few are drawn twice on one pixel
    assert (dark > 0).sum() == places > 1000 and warm.truth.dark_scale == pytest.approx(2)
    np.testing.assert_allclose(warm.truth.expected - render(hot_pixels=False).truth.expected, 2 * dark, atol=0.05)
    assert abs(float(warm.header["CAMTEMP"].split()[0]) - (HOT_PIXEL_TEMPERATURE_C + DARK_DOUBLING_C)) < 5


def test_a_named_host_star_is_found_for_its_transit():
    from panoptes_network.simulator.stars import nearest_catalog_star

    hd189733 = nearest_catalog_star(300.1821, 22.7097)  # HD 189733, G = 7.4
    assert hd189733 is not None and hd189733 > 0
    assert nearest_catalog_star(300.1821 + 0.1, 22.7097, within_arcsec=5) is None
