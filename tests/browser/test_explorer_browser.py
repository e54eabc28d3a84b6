"""The explorer in a real browser: Debian's headless Chromium driven by Playwright, against
the local stack served on a free port, over frames the pipeline recorded.

Each page is saved as a screenshot in test-artifacts/explorer/, and no page may log a
console error or throw.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path

import pytest

from panoptes_network.explorer import stats
from tests.conftest import REPOSITORY, skip_or_fail
from tests.explorer_data import KIC_IMAGES, KIC_SEQUENCE_ID, record_observations, sequence_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = os.environ.get("PANOPTES_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPOSITORY / "test-artifacts" / "explorer"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                 "--disable-extensions", "--disable-sync", "--no-first-run", "--mute-audio"]


@pytest.fixture(params=["local"])
def backend(request, monkeypatch, tmp_path):
    """The browser tests run on the local backend (the API tests cover both)."""
    from panoptes_network import runtime

    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOOKUP_ONLINE", "false")
    for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)
    runtime.reset()
    yield request.param
    runtime.reset()


@pytest.fixture
def site(stack, pocs):
    """The stack's web server on a free port, over recorded observations."""
    from panoptes_network.stack.server import StackServer

    sequences = record_observations(stack, pocs)
    stats._cache.clear()
    server = StackServer(stack.settings, "127.0.0.1", 0).start_background()
    yield server.url, sequences
    server.shutdown()


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).is_file():
        skip_or_fail(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (requirements-dev.txt)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.problems = []
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.on("console", lambda message: message.type == "error" and page.problems.append(
            f"console error on {page.url}: {message.text}"))
        page.on("pageerror", lambda error: page.problems.append(f"uncaught exception on {page.url}: {error}"))
        page.on("requestfailed", lambda request: page.problems.append(
            f"request failed on {page.url}: {request.url} ({request.failure})"))
        yield page
        context.close()
        browser.close()


def assert_nothing_from_outside(page, base: str) -> None:
    outside = [url for url in page.requested if not url.startswith((base, "data:", "blob:"))]
    assert outside == [], f"the pages loaded assets from outside the app: {outside}"


def settle(page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_scientist_searches_and_browses_without_errors(site, browser_page):
    base, sequences = site
    page = browser_page
    requested = page.requested

    # Overview: the cards count what the pipeline recorded; the weekly chart is drawn.
    page.goto(base + "/")
    assert page.locator("#total-observations").inner_text() == str(2 + len(sequences))
    assert page.locator("#total-images").inner_text() == str(3 + 2 * len(sequences))
    page.locator("#weekly-chart .main-svg").first.wait_for()
    page.select_option("#metric", "exposure_hours")
    assert "Exposure hours" in page.locator("#weekly-chart").inner_text()
    settle(page, "1-overview")

    # Search by name: the form resolves the name and the URL carries the query.
    page.click("text=Search observations")
    page.fill("#target", "KIC 8462852")
    page.fill("#radius", "5")
    page.click("#search-button")
    page.wait_for_url("**/search?*target=KIC+8462852*")
    assert "resolved by exoplanet hosts" in page.locator("#cone-summary").inner_text()
    results = page.locator("#results tbody a.observation-link")
    assert KIC_SEQUENCE_ID in results.all_inner_texts()
    page.locator("#sky-map .main-svg").first.wait_for()
    settle(page, "2-search-by-name")

    # The CSV download holds the results.
    with page.expect_download() as download:
        page.click("#download-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert KIC_SEQUENCE_ID in [row["sequence_id"] for row in rows]
    assert download.value.suggested_filename.endswith(".csv")

    # Search by coordinates, near a generated observation, limited to its unit.
    first = sequences[0]
    page.goto(base + "/search")
    page.fill("#ra", f"{first.target.ra:.4f}")
    page.fill("#dec", f"{first.target.dec:.4f}")
    page.fill("#radius", "3")
    page.select_option("#units", first.site.unit_id)
    page.click("#search-button")
    page.wait_for_url("**/search?*ra=*")
    found = page.locator("#results tbody a.observation-link").all_inner_texts()
    assert sequence_id(first) in found
    assert all(text.startswith(first.site.unit_id) for text in found)
    settle(page, "3-search-by-coordinates")

    # Sorting is a link that keeps the query.
    page.click("#results thead a:has-text('Images')")
    page.wait_for_url("**sort=num_images*")
    assert f"unit={first.site.unit_id}" in page.url
    settle(page, "4-search-sorted")

    # The observation page: metadata, frames, the per-frame plot, a preview and the header.
    # The first preview asked for finds the server busy (503 with Retry-After, as the previews
    # module answers when every maker stays taken): the page asks again after it.
    preview_answers = []

    def busy_once(route):
        if preview_answers:
            preview_answers.append((200, time.monotonic()))
            route.continue_()
            return
        preview_answers.append((503, time.monotonic()))
        route.fulfill(status=503, headers={"Retry-After": "1"}, content_type="application/json",
                      body='{"success": false, "msg": "previews are being made for other requests; try again in 1 s"}')

    page.route("**/preview.png", busy_once)
    page.goto(base + "/search?target=KIC+8462852")
    page.click(f"a.observation-link:has-text('{KIC_SEQUENCE_ID}')")
    page.wait_for_url(f"**/observations/{KIC_SEQUENCE_ID}")
    assert "KIC 8462852" in page.locator("#observation-meta").inner_text()
    assert page.locator("#images tbody tr").count() == 2
    page.locator("#frames-chart .main-svg").first.wait_for()
    shown = ("(imageId) => { const img = document.getElementById('preview'); return img.complete && img.naturalWidth > 0"
             " && img.dataset.source.includes(imageId) && !document.getElementById('preview-status').textContent; }")
    page.wait_for_function(shown, arg=KIC_IMAGES[0])
    [(busy, refused_at), (made, asked_again_at)] = preview_answers
    assert (busy, made) == (503, 200) and asked_again_at - refused_at >= 0.95  # after its Retry-After: 1
    page.unroute("**/preview.png")
    # The browser logs the 503 itself; the page logs nothing.
    assert len(page.problems) == 1 and "status of 503" in page.problems[0], page.problems
    page.problems.clear()
    page.locator("#images tbody tr").nth(1).locator("button.show-frame").click()
    page.wait_for_function(shown, arg=KIC_IMAGES[1])
    assert page.evaluate("document.getElementById('preview').naturalWidth") == 350
    page.wait_for_function("() => document.querySelectorAll('#fits-header tbody tr').length > 20")
    header = dict(zip(page.locator("#fits-header tbody th").all_inner_texts(),
                      page.locator("#fits-header tbody td").all_inner_texts()))
    assert header["FIELD"] == "KIC 8462852" and header["NAXIS1"] == "700"
    settle(page, "5-observation")

    # The unit page.
    page.click("#observation-meta a:has-text('PAN001')")
    page.wait_for_url("**/units/PAN001")
    assert "19.5400" in page.locator("#unit-meta").inner_text()
    page.locator("#unit-chart .main-svg").first.wait_for()
    settle(page, "6-unit")

    assert page.problems == []

    # A search the API refuses says why, on the page (the browser logs the page's 400 itself).
    page.goto(base + "/search?ra=10&dec=20&radius=500")
    assert "radius must be between 0 and 180" in page.locator("#error-message").inner_text()
    settle(page, "7-bad-search")
    assert all("status of 400" in problem for problem in page.problems), page.problems

    assert_nothing_from_outside(page, base)


@pytest.fixture
def star_site(stack):
    """The stack's web server over processed data (tests/explorer_star_data.py): a hot-Jupiter host."""
    from panoptes_network.stack.server import StackServer
    from tests.explorer_star_data import write_processed_on

    written = write_processed_on(stack)
    server = StackServer(stack.settings, "127.0.0.1", 0).start_background()
    yield server.url, written
    server.shutdown()


def test_scientist_finds_a_host_folds_its_transit_and_judges_a_run(star_site, browser_page):
    from astropy.io import fits as astropy_fits

    from tests.explorer_star_data import HOST_FLUX_EXCESS, HOST_NAME, HOST_PICID, PERIOD_DAYS, TRANSIT_NUMBERS

    base, written = star_site
    page = browser_page
    requested = page.requested

    # From the overview to the star search; the host found by name.
    page.goto(base + "/")
    page.click("#stars-link")
    page.wait_for_url("**/stars")
    page.fill("#target", HOST_NAME)
    page.click("#star-search-button")
    page.wait_for_url("**/stars?*target=HD+209458*")
    assert page.locator("#star-results tbody a.star-link").all_inner_texts() == [HOST_PICID]
    settle(page, "star-1-search-by-name")

    # Its star page: catalog ids, the lightcurves against time, the period search and the fold.
    page.click(f"a.star-link:has-text('{HOST_PICID}')")
    page.wait_for_url(f"**/stars/{HOST_PICID}")
    assert "hip 108859" in page.locator("#other-ids").inner_text()
    page.locator("#lightcurve-chart .main-svg").first.wait_for()
    page.wait_for_function("() => document.getElementById('periodogram-chart').dataset.best", timeout=60_000)
    best = float(page.locator("#periodogram-chart").get_attribute("data-best"))
    assert abs(best - PERIOD_DAYS) / PERIOD_DAYS < 2e-3
    assert int(page.locator("#fold-chart").get_attribute("data-folded")) > 1000
    assert page.locator("#lightcurves tbody tr").count() == len(TRANSIT_NUMBERS)
    # each run's blend light (the share the pipeline took out of its flux) beside its precision
    assert page.locator("#lightcurves tbody tr").first.locator("td").last.inner_text() == f"+{HOST_FLUX_EXCESS:.0%}"
    # Folded on the search's own epoch: the transit is at the middle of the plot.
    assert "hours from mid-transit" in page.locator("#fold-chart").inner_text()
    assert "depth 1." in page.locator("#bls-status").inner_text()
    # Beside the peak, the transit fitted over every transit: the depth (1.5% injected) and the count.
    fit = page.locator("#transit-fit")
    assert abs(float(fit.get_attribute("data-depth")) - 0.015) < 0.0015
    assert int(fit.get_attribute("data-transits")) == sum(float(n).is_integer() for n in TRANSIT_NUMBERS)
    assert "T0 " in fit.inner_text() and "BJD_TDB" in fit.inner_text()
    settle(page, "star-2-lightcurves-and-fold")
    # The page read the g fluxes only; another channel's are read when it is chosen.
    assert [url for url in requested if "format=plot" in url] == [f"{base}/api/stars/{HOST_PICID}/lightcurves?format=plot&channel=g"]
    page.select_option("#channel", "r")
    page.wait_for_function("() => document.getElementById('fold-chart').textContent.includes('normalised flux (r)')"
                           " && document.getElementById('lightcurve-chart').textContent.includes('normalised flux (r)')")
    assert int(page.locator("#fold-chart").get_attribute("data-folded")) > 1000
    assert any(url.endswith("format=plot&channel=r") for url in requested)

    # The FITS download is the star's lightcurve for lightkurve.
    with page.expect_download() as download:
        page.click("#download-lightcurves-fits")
    with astropy_fits.open(download.value.path()) as hdus:
        assert hdus[0].header["TICID"] == int(HOST_PICID) and hdus[1].name == "LIGHTCURVE"
    assert download.value.suggested_filename.endswith(".fits")

    # An observation's processing run: its quality plots and the RMS diagram, with links to the stars.
    page.locator("#lightcurves tbody a").first.click()
    page.wait_for_url("**/observations/*")
    run = page.locator("section.run").first
    run.locator(".rms-chart .main-svg").first.wait_for()
    run.locator(".quality-chart .main-svg").first.wait_for()
    assert "processed" in page.locator("#processing-state").inner_text()
    assert "fwhm" in run.locator("table.rejected").inner_text()
    assert HOST_PICID in run.locator(".star-links").inner_text()
    assert run.locator(".rms-chart .scatterlayer .trace, .rms-chart canvas").count() >= 1
    settle(page, "star-3-observation-run")

    assert page.problems == []
    assert_nothing_from_outside(page, base)
