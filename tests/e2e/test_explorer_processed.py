"""The explorer over what process-observation really writes (issue 13's pipeline, not the
fixture module): a simulated sequence uploaded, processed, and read back through the star
and run API, the observation page and the lightkurve FITS download."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network.pipeline import process
from panoptes_network.stack.services import load_app
from tests.e2e.test_process_observation import TOPIC, sequence_frames, upload  # noqa: F401 (a fixture)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_processed_sequence_is_browsed_star_by_star(stack, sequence_frames):  # noqa: F811
    sequence = upload(stack, sequence_frames)
    stack.publish(TOPIC, {"sequence_id": sequence})
    stack.drain(timeout=600)
    assert stack.dead_letters() == []
    [run] = stack.documents.query(process.RUNS)
    client = load_app("data-explorer").test_client()

    observation = client.get(f"/api/observations/{sequence}").get_json()["observation"]
    assert observation["processing_state"] == "processed" and observation["latest_run_id"] == run.id
    shown = client.get(f"/api/processed_observations/{run.id}").get_json()["run"]
    assert shown["num_stars"] == run.data["num_stars"] and shown["rms_vs_mag"]["rms"]
    page = client.get(f"/observations/{sequence}").get_data(as_text=True)
    assert f'id="run-{run.id}"' in page and "RMS against magnitude" in page
    # Each run once, in the page's body: the title is only the sequence id.
    assert page.count(f'id="run-{run.id}"') == 1
    assert f"<title>{sequence} · PANOPTES Data Explorer</title>" in page

    measured = [doc for doc in stack.documents.query(process.LIGHTCURVES) if doc.data["best_rms"] is not None]
    picid = min(measured, key=lambda doc: doc.data["best_rms"]).data["picid"]
    star = client.get(f"/api/stars/{picid}").get_json()
    assert [row["processed_observation_id"] for row in star["lightcurves"]] == [run.id]
    assert sequence in [row["sequence_id"] for row in star["observations"]]
    listed = client.get("/api/stars?sort=best_rms&per_page=500").get_json()
    assert picid in [row["picid"] for row in listed["stars"]]
    assert client.get(f"/stars/{picid}").status_code == 200

    response = client.get(f"/api/stars/{picid}/lightcurves?format=fits")
    assert response.status_code == 200
    with astropy_fits.open(io.BytesIO(response.data)) as hdus:
        assert hdus[0].header["TICID"] == int(picid) if picid.isdigit() else hdus[0].header["PICID"] == picid
        time = hdus[1].data["TIME"]
        assert len(time) >= 5 and np.all(np.diff(time) > 0) and 3000 < time[0] < 4000  # BTJD of 2024
