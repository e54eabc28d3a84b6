"""What the explorer tests search (real POCS frames and a few generated ones, recorded by the
pipeline), how they read its JSON API, and what it must show of a processed sequence."""

from __future__ import annotations

import io
from datetime import date, datetime, timezone

import numpy as np
from astropy.io import fits as astropy_fits

from panoptes_network import demo

KIC_SEQUENCE = "PAN001/14d3bd/20160909T081152"
KIC_SEQUENCE_ID = "PAN001_14d3bd_20160909T081152"
KIC_IMAGES = ("PAN001_14d3bd_20160909T081226", "PAN001_14d3bd_20160909T081434")
POLE_SEQUENCE_ID = "PAN001_14d3bd_20170410T043500"
POCS_UPLOADS = (
    ("tiny.fits", f"{KIC_SEQUENCE}/20160909T081226.fits"),
    ("solved.fits.fz", f"{KIC_SEQUENCE}/20160909T081434.fits.fz"),
    # Plate-solved next to the celestial pole (its header has no ids: the path gives them).
    ("pole.fits", "PAN001/14d3bd/20170410T043500/20170410T043516.fits"),
)
GENERATED_NIGHTS = (date(2024, 6, 9), date(2024, 6, 10))
FRAMES_PER_SEQUENCE = 2
FRAME_SHAPE = (96, 144)  # small simulated cut-outs: the explorer tests read headers and previews


def generated_sequences(count: int = 4) -> list[demo.Sequence]:
    """A few demo sequences, one camera, two frames each: small, but from several sites and targets."""
    with demo._offline_astropy():
        planned = demo.plan(len(GENERATED_NIGHTS), GENERATED_NIGHTS[-1], seed=11,
                            not_after=datetime(2030, 1, 1, tzinfo=timezone.utc))
        chosen, units = [], set()
        for sequence in planned:  # first one per unit, then any
            if sequence.site.unit_id not in units:
                chosen.append(sequence)
                units.add(sequence.site.unit_id)
        chosen += [s for s in planned if s not in chosen][: max(0, count - len(chosen))]
        for sequence in chosen[:count]:
            sequence.frames = FRAMES_PER_SEQUENCE
            demo.observe(sequence)
    return chosen[:count]


def generated_frames(sequences: list[demo.Sequence]) -> list[tuple[str, bytes]]:
    with demo._offline_astropy():
        return [demo.frame(sequence, index, 0, FRAME_SHAPE)
                for sequence in sequences for index in range(sequence.frames)]


def sequence_id(sequence: demo.Sequence) -> str:
    from panoptes_network.ids import format_time

    return f"{sequence.site.unit_id}_{sequence.site.cameras[0]}_{format_time(sequence.start)}"


def record_observations(stack, pocs) -> list[demo.Sequence]:
    """Upload the POCS frames and the generated ones, and let the pipeline record them."""
    for name, bucket_path in POCS_UPLOADS:
        stack.upload(pocs / name, bucket_path)
    sequences = generated_sequences()
    for bucket_path, data in generated_frames(sequences):
        stack.upload(data, bucket_path)
    stack.drain()
    assert stack.dead_letters() == []
    return sequences


def get_json(client, url: str, status: int = 200) -> dict:
    """The API's answer to a GET, checked to be ``status`` with ``success`` to match."""
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.data[:500])
    payload = response.get_json()
    assert payload["success"] is (status == 200)
    return payload


def assert_browsable_in_the_explorer(stack, sequence: str, run_id: str) -> None:
    """What process-observation wrote for ``sequence`` (its run ``run_id``), read back through the
    explorer's API and pages, as a scientist would: the run, the observation page, the best star's
    lightcurves, the star list and the FITS download for lightkurve."""
    from panoptes_network.pipeline import process
    from panoptes_network.stack.services import load_app

    client = load_app("data-explorer").test_client()
    observation = get_json(client, f"/api/observations/{sequence}")["observation"]
    assert observation["processing_state"] == "processed" and observation["latest_run_id"] == run_id
    run = stack.documents.get(process.RUNS, run_id)
    shown = get_json(client, f"/api/processed_observations/{run_id}")["run"]
    assert shown["num_stars"] == run["num_stars"] and shown["rms_vs_mag"]["rms"]
    page = client.get(f"/observations/{sequence}").get_data(as_text=True)
    assert f'id="run-{run_id}"' in page and "RMS against magnitude" in page
    # Each run once, in the page's body: the title is only the sequence id.
    assert page.count(f'id="run-{run_id}"') == 1
    assert f"<title>{sequence} · PANOPTES Data Explorer</title>" in page

    measured = [doc for doc in stack.documents.query(process.LIGHTCURVES) if doc.data["best_rms"] is not None]
    picid = min(measured, key=lambda doc: doc.data["best_rms"]).data["picid"]
    star = get_json(client, f"/api/stars/{picid}")
    assert [row["processed_observation_id"] for row in star["lightcurves"]] == [run_id]
    assert sequence in [row["sequence_id"] for row in star["observations"]]
    plot = get_json(client, f"/api/stars/{picid}/lightcurves?format=plot")
    assert [series["run_id"] for series in plot["series"]] == [run_id]
    assert plot["lightcurves"][0]["num_points"] == len(run["frames_used"])
    listed = get_json(client, "/api/stars?sort=best_rms&per_page=500")
    assert picid in [row["picid"] for row in listed["stars"]]
    assert client.get(f"/stars/{picid}").status_code == 200

    response = client.get(f"/api/stars/{picid}/lightcurves?format=fits")
    assert response.status_code == 200
    with astropy_fits.open(io.BytesIO(response.data)) as hdus:
        assert hdus[0].header["TICID"] == int(picid) if picid.isdigit() else hdus[0].header["PICID"] == picid
        time = hdus[1].data["TIME"]
        assert len(time) >= 5 and np.all(np.diff(time) > 0) and 3000 < time[0] < 4000  # BTJD of 2024
