"""The data explorer's observation page shows each frame's plate solve."""

from __future__ import annotations

from datetime import datetime, timezone

from panoptes_network.stack.services import load_app

SEQUENCE_ID = "PAN001_14d3bd_20160909T081152"


def image(time: str, **fields) -> dict:
    return {"sequence_id": SEQUENCE_ID, "bucket_path": f"PAN001/14d3bd/20160909T081152/{time}.fits.fz",
            "time": datetime.strptime(time, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc), "exptime": 120.0,
            "airmass": 1.13, "moonfrac": 0.49, "moonsep": 76.0, "camtemp": 13.0,
            **fields}


def test_observation_page_shows_each_frames_solve(stack):
    documents = stack.documents
    start = datetime(2016, 9, 9, 8, 11, 52, tzinfo=timezone.utc)
    documents.set("observations", SEQUENCE_ID, {
        "unit_id": "PAN001", "camera_id": "14d3bd", "software_version": "POCSv0.1.1", "ra": 303.21216,
        "dec": 46.01952, "ra_mnt": 301.56439, "dec_mnt": 44.456875, "exptime": 120.0, "status": "receiving_files",
        "time": start, "field_name": "KIC 8462852", "project": "Project PANOPTES", "iso": 100, "num_images": 3,
        "total_exptime": 360.0, "first_image_time": start, "last_image_time": start})
    documents.set("images", "PAN001_14d3bd_20160909T081314", image(
        "20160909T081314", status="solved", plate_solved=True, ra_image=303.21216, dec_image=46.01952,
        solve={"engine": "astrometry.net", "matched_stars": 111, "rms_arcsec": 2.35, "seconds": 4.3}))
    documents.set("images", "PAN001_14d3bd_20160909T081226", image(
        "20160909T081226", status="unsolved", plate_solved=False,
        solve={"status": "unsolved", "reason": "astrometry.net: no solution from 78 detected stars"}))
    documents.set("images", "PAN001_14d3bd_20160909T081434", image(
        "20160909T081434", status="uploaded", plate_solved=True, ra_image=303.2, dec_image=46.0))

    page = load_app("data-explorer").test_client().get(f"/observations/{SEQUENCE_ID}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<th>Plate solve</th>" in html
    assert "303.2122, 46.0195: astrometry.net, 111 stars, 2.35″ rms, 4.3 s" in html
    assert "unsolved: astrometry.net: no solution from 78 detected stars" in html
    assert "from its header" in html
