"""Processed data for the explorer's star pages, in the shape agreed in SCIENCE_SCHEMA.md,
written through the documents port (and a bucket, for arrays moved out of a document).

A hot-Jupiter host, HD 209458 (TIC 420814525, as lookup-field knows it), observed on
several nights by one unit; its lightcurves carry the simulator's trapezoid transit
(:class:`panoptes_network.simulator.signals.Transit`) with a known period, so folds and the
period search are checked against a truth. A few neighbours are flat, one has its arrays
in the processed bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from panoptes_network import sky
from panoptes_network.simulator.signals import Transit

HOST_NAME = "HD 209458"
HOST_PICID = "420814525"
HOST_RA, HOST_DEC = 330.79489, 18.88432
PERIOD_DAYS = 3.52474859
DEPTH = 0.015
HOST_FLUX_EXCESS = 0.12  # g: the light of an uncatalogued neighbour in its aperture, as the pipeline reports it
DURATION_HOURS = 3.0
INGRESS_FRACTION = 0.15  # a trapezoid, as a planet's transit (and the star page's transit fit) has
EPOCH = datetime(2024, 6, 1, 7, 30, tzinfo=timezone.utc)
# The nights observed, in transits since EPOCH: whole numbers are nights with a transit, the
# others flat nights, where the aliases P/2 .. P/5 would put one.
TRANSIT_NUMBERS = (0, 0.5, 1, 1.33, 1.6, 2, 2.75, 4, 5.4, 7)
UNIT_ID, CAMERA_ID = "PAN012", "358d0f"
CADENCE_MINUTES = 2.0
HOURS_OBSERVED = 8.0
NOISE = 0.002
PIPELINE_VERSION = "0.14.0-test"
# (picid, ra offset deg, dec offset deg, G mag); the last one's arrays live in the bucket
NEIGHBOURS = (("420814600", 0.30, 0.10, 9.1), ("420814601", -0.40, 0.25, 9.8), ("420814602", 0.15, -0.35, 8.4))
BUCKET_STAR = "420814602"
HOST_MAG = 7.65


@dataclass
class Written:
    sequence_ids: list[str]
    run_ids: list[str]
    lightcurve_ids: list[str]
    transit: Transit


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def star_document(picid: str, ra: float, dec: float, mag: float) -> dict:
    return {"ra": ra, "dec": dec, "epoch": 2000.0, "pmra": 30.0, "pmdec": -18.0, "mag": mag,
            "magnitudes": {"T": mag - 0.5, "V": mag + 0.2, "G": mag},
            "ids": {"tic": picid, **({"hip": "108859", "gaia_dr2": "1779546757669063552"} if picid == HOST_PICID else {})},
            "catalog": "tic", "id_kind": "tic_id", sky.INDEX_FIELD: sky.cells_of(ra, dec)}


def _stars() -> list[tuple[str, float, float, float]]:
    return [(HOST_PICID, HOST_RA, HOST_DEC, HOST_MAG)] + [
        (picid, HOST_RA + dra, HOST_DEC + ddec, mag) for picid, dra, ddec, mag in NEIGHBOURS]


def write_processed(documents, bucket=None, bucket_name: str | None = None, nights=TRANSIT_NUMBERS,
                    seed: int = 14) -> Written:
    """Stars, observations, processing runs and lightcurves for ``nights`` (transit numbers)."""
    rng = np.random.default_rng(seed)
    transit = Transit(int(HOST_PICID), EPOCH, PERIOD_DAYS, DEPTH, DURATION_HOURS, ingress_fraction=INGRESS_FRACTION)
    written = Written([], [], [], transit)
    stars = _stars()
    star_docs = {picid: star_document(picid, ra, dec, mag) for picid, ra, dec, mag in stars}
    curves_per_star: dict[str, list[float]] = {picid: [] for picid, *_ in stars}
    for number in nights:
        middle = EPOCH + timedelta(days=PERIOD_DAYS * number)
        start = middle - timedelta(hours=HOURS_OBSERVED / 2) + timedelta(minutes=50 * (round(number * 10) % 3) - 40)
        count = int(HOURS_OBSERVED * 60 / CADENCE_MINUTES)
        times = [start + timedelta(minutes=CADENCE_MINUTES * i) for i in range(count)]
        sequence_id = f"{UNIT_ID}_{CAMERA_ID}_{start.strftime('%Y%m%dT%H%M%S')}"
        run_id = f"{sequence_id}_{'%012x' % (0xabc000 + round(number * 100))}"
        image_ids = [f"{UNIT_ID}_{CAMERA_ID}_{moment.strftime('%Y%m%dT%H%M%S')}" for moment in times]
        rejected = [{"image_id": image_ids[5], "reason": "fwhm 9.8 px is more than 2x the median (3.1 px)"}]
        used = [image for image in image_ids if image != image_ids[5]]
        observation = {"unit_id": UNIT_ID, "camera_id": CAMERA_ID, "field_name": "HD209458", "time": start,
                       "ra": HOST_RA, "dec": HOST_DEC, "num_images": count, "exptime": 90.0,
                       "total_exptime": 90.0 * count, "first_image_time": times[0], "last_image_time": times[-1],
                       "status": "complete", "processing_state": "processed", "latest_run_id": run_id,
                       sky.INDEX_FIELD: sky.cells_of(HOST_RA, HOST_DEC)}
        documents.set("observations", sequence_id, observation, merge=False)
        bjd = np.array([moment.timestamp() / 86400.0 + 2440587.5 for moment in times]) + 0.004  # ~light travel
        used_times = [t for t, image in zip(times, image_ids) if image in used]
        mags, rmses = [], []
        for picid, ra, dec, mag in stars:
            factor = np.array([transit.factor(moment) for moment in times]) if picid == HOST_PICID else np.ones(count)
            sigma = NOISE * 10 ** (0.2 * (mag - HOST_MAG))
            channels, summary = {}, {}
            for channel, scale in (("r", 1.1), ("g", 1.0), ("b", 1.3)):
                noise = rng.normal(0, sigma * scale, count)
                flux = factor * (1 + noise)
                flags = [16 if image == image_ids[5] else 0 for image in image_ids]
                rms = float(np.std(flux[[f == 0 for f in flags]] / factor[[f == 0 for f in flags]]))
                channels[channel] = {"flux": np.round(flux, 6).tolist(),
                                     "flux_err": [round(sigma * scale, 6)] * count,
                                     "raw_flux": np.round(flux * 10 ** (-0.4 * (mag - 20)), 1).tolist(), "flags": flags}
                summary[channel] = {"rms": rms, "ppm_30min": rms / np.sqrt(15) * 1e6, "num_points": count - 1,
                                    "flux_excess": HOST_FLUX_EXCESS if picid == HOST_PICID else 0.0}
            best = min(values["rms"] for values in summary.values())
            lightcurve_id = f"{run_id}_{picid}"
            document = {"picid": picid, "sequence_id": sequence_id, "processed_observation_id": run_id,
                        "unit_id": UNIT_ID, "time": start, "ra": ra, "dec": dec, "mag": mag,
                        "summary": summary, "best_rms": best, "arrays": None}
            arrays = {"time_bjd_tdb": bjd.tolist(), "time_utc": [_iso(t) for t in times], "channels": channels}
            if picid == BUCKET_STAR and bucket is not None:
                path = f"lightcurves/{run_id}/{picid}.json"
                bucket.write(path, json.dumps(arrays).encode(), content_type="application/json")
                document["arrays"] = {"bucket": bucket_name, "path": path}
            else:
                document.update(arrays)
            documents.set("lightcurves", lightcurve_id, document, merge=False)
            written.lightcurve_ids.append(lightcurve_id)
            curves_per_star[picid].append(best)
            mags.append(mag)
            rmses.append(summary["g"]["rms"])
        theory_mag = np.linspace(6, 11, 26)
        quality = {"image_id": used, "time": [_iso(t) for t in used_times],
                   "fwhm_px": np.round(3.1 + 0.3 * rng.standard_normal(len(used)), 3).tolist(),
                   "background_adu": np.round(2100 + 40 * rng.standard_normal(len(used)), 1).tolist(),
                   "zero_point_mag": np.round(20.1 + 0.02 * rng.standard_normal(len(used)), 4).tolist(),
                   "transparency": np.round(1 - 0.02 * np.abs(rng.standard_normal(len(used))), 4).tolist(),
                   "drift_x_px": np.round(np.linspace(0, 4, len(used)), 3).tolist(),
                   "drift_y_px": np.round(np.linspace(0, -2, len(used)), 3).tolist(),
                   "airmass": np.round(np.linspace(1.4, 1.05, len(used)), 3).tolist()}
        run = {"sequence_id": sequence_id, "unit_id": UNIT_ID, "camera_id": CAMERA_ID, "field_name": "HD209458",
               "pipeline_version": PIPELINE_VERSION, "params": {"aperture_fwhm": 1.5}, "time": start + timedelta(days=1),
               "status": "complete", "reason": None, "frames_used": used, "frames_rejected": rejected,
               "num_frames_used": len(used), "num_stars": len(stars), "quality": quality,
               "summary": {"median_fwhm_px": 3.1, "median_background_adu": 2100.0, "median_zero_point_mag": 20.1},
               "rms_vs_mag": {"channel": "g", "picid": [s[0] for s in stars], "mag": mags, "rms": rmses,
                              "theory_mag": theory_mag.tolist(),
                              "theory_rms": (NOISE * 10 ** (0.2 * (theory_mag - HOST_MAG))).tolist()}}
        documents.set("processed_observations", run_id, run, merge=False)
        written.sequence_ids.append(sequence_id)
        written.run_ids.append(run_id)
    last = EPOCH + timedelta(days=PERIOD_DAYS * max(nights) + 1)
    for picid, document in star_docs.items():
        document.update(num_lightcurves=len(curves_per_star[picid]), best_rms=min(curves_per_star[picid]),
                        last_processed=last)
        documents.set("stars", picid, document, merge=False)
    # A catalog star nobody measured, inside the cone: found by a cone search, not by the list of measured stars.
    documents.set("stars", "420814999", star_document("420814999", HOST_RA + 0.2, HOST_DEC + 0.2, 9.95), merge=False)
    return written


def write_processed_on(stack, **options) -> Written:
    """:func:`write_processed` into a test stack's store and processed bucket, with the explorer's
    cache of period searches emptied (a search cached by an earlier test is no answer here)."""
    from panoptes_network.explorer import stars

    settings = stack.settings
    written = write_processed(stack.documents, stack.bucket(settings.processed_bucket), settings.processed_bucket, **options)
    stars._cache.clear()
    return written
