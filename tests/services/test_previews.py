"""Previews under load: bounded memory (a frame read and binned band by band) and at most
PREVIEW_CONCURRENCY made at once, the rest waiting or answered 503 with Retry-After.
Speed and peak memory under 50 concurrent requests are measured in bench/previews.py."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import runtime
from panoptes_network.config import settings
from panoptes_network.explorer import previews
from panoptes_network.stack.services import load_app

SEQUENCE = "PAN001/14d3bd/20160909T081152"


def whole_frame_binned(data: np.ndarray, max_size: int = previews.MAX_SIZE) -> np.ndarray:
    """What a preview shows, worked out the plain way: the whole frame in memory, then binned."""
    data = np.asarray(data, dtype=np.float32)
    if min(data.shape) >= 2:
        data = previews._bin(data, 2)
    factor = max(1, -(-max(data.shape) // max_size))
    return previews._bin(data, factor) if factor > 1 else data


@pytest.mark.parametrize("shape", [(1001, 3001), (7, 5), (1, 9), (1800, 900)])
def test_band_by_band_binning_equals_binning_the_whole_frame(shape, monkeypatch):
    monkeypatch.setattr(previews, "BAND_PIXELS", 50_000)  # many bands, odd remainders
    data = np.random.default_rng(1).integers(0, 65535, shape).astype(np.uint16)
    data[0, 0] = 0
    file = io.BytesIO()
    astropy_fits.HDUList([astropy_fits.PrimaryHDU(), astropy_fits.CompImageHDU(data)]).writeto(file)
    for source in (file, io.BytesIO(_plain(data))):  # tile-compressed and plain
        source.seek(0)
        binned = previews.binned_pixels(source)
        np.testing.assert_allclose(binned, whole_frame_binned(data), rtol=1e-6)


def _plain(data: np.ndarray) -> bytes:
    file = io.BytesIO()
    astropy_fits.PrimaryHDU(data).writeto(file)
    return file.getvalue()


def test_real_frames_bin_as_before(pocs):
    for name in ("tiny.fits", "solved.fits.fz"):
        with astropy_fits.open(pocs / name) as hdus:
            data = next(hdu.data for hdu in hdus if hdu.is_image and hdu.data is not None)
        np.testing.assert_allclose(previews.binned_pixels(pocs / name), whole_frame_binned(data), rtol=1e-6)


@pytest.fixture
def frames(local_backend, pocs):
    """Six frames in the raw bucket with their images documents; the explorer app."""
    raw = runtime.bucket(settings().raw_bucket)
    documents = runtime.documents()
    ids = []
    for minute in range(6):
        image_id = f"PAN001_14d3bd_20160909T08{20 + minute}00"
        path = f"{SEQUENCE}/20160909T08{20 + minute}00.fits.fz"
        raw.write(path, (pocs / "solved.fits.fz").read_bytes())
        documents.set("images", image_id, {"bucket_path": path, "sequence_id": "PAN001_14d3bd_20160909T081152"})
        ids.append(image_id)
    return load_app("data-explorer"), ids


def test_at_most_n_previews_are_made_at_once_and_the_rest_wait(frames, monkeypatch):
    app, ids = frames
    monkeypatch.setattr(previews, "_makers", previews._Makers(2))
    making, most = [0], [0]
    lock = threading.Lock()
    real = previews.binned_pixels

    def counted(file):
        with lock:
            making[0] += 1
            most[0] = max(most[0], making[0])
        try:
            time.sleep(0.5)  # long enough for the others to pile up behind the two makers
            return real(file)
        finally:
            with lock:
                making[0] -= 1

    monkeypatch.setattr(previews, "binned_pixels", counted)
    statuses = []

    def ask(image_id):
        statuses.append(app.test_client().get(f"/api/images/{image_id}/preview.png").status_code)

    threads = [threading.Thread(target=ask, args=(image_id,)) for image_id in ids + ids[:2]]  # two asked twice
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == [200] * len(threads)
    assert most[0] == 2
    assert previews._makers.in_flight == {}  # nothing kept once made


def test_a_request_that_waits_too_long_gets_503_and_its_preview_is_made_for_the_retry(frames, monkeypatch):
    app, ids = frames
    makers = previews._Makers(1)
    monkeypatch.setattr(previews, "_makers", makers)
    monkeypatch.setenv("PREVIEW_WAIT_SECONDS", "0.2")
    client = app.test_client()
    other_request = threading.Event()
    makers.pool.submit(other_request.wait, 60)  # another preview holds the only maker
    busy = client.get(f"/api/images/{ids[0]}/preview.png")
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == str(previews.RETRY_AFTER_SECONDS)
    assert "try again" in busy.get_json()["msg"]
    cache = runtime.bucket(previews.preview_bucket_name(settings()))
    name = previews.preview_name(f"{SEQUENCE}/20160909T082000.fits.fz")
    assert not cache.exists(name)

    other_request.set()  # the maker is free: the preview asked for is made, and kept
    makers.pool.shutdown(wait=True)
    assert cache.exists(name)
    monkeypatch.setattr(previews, "_makers", previews._Makers(1))
    retried = client.get(f"/api/images/{ids[0]}/preview.png")
    assert retried.status_code == 200 and retried.headers["X-Preview-Cache"] == "hit"


def test_past_the_queue_limit_a_request_is_refused_at_once(frames, monkeypatch):
    app, ids = frames
    makers = previews._Makers(1)
    monkeypatch.setattr(previews, "_makers", makers)
    monkeypatch.setattr(previews, "MAX_QUEUED", 1)
    monkeypatch.setenv("PREVIEW_WAIT_SECONDS", "0.2")
    other_request = threading.Event()
    makers.in_flight["another frame"] = makers.pool.submit(other_request.wait, 60)
    try:
        refused = app.test_client().get(f"/api/images/{ids[1]}/preview.png")
        assert refused.status_code == 503
        assert list(makers.in_flight) == ["another frame"]  # refused, not queued behind it
    finally:
        other_request.set()
        makers.pool.shutdown(wait=True)
