"""Photometry: solved frames to lightcurves.

    from panoptes_network.photometry import PhotometryParams, measure_frame, build_lightcurves
    m = measure_frame(data, header, wcs, stars, params)     # one frame, pure: run it in a process pool
    result = build_lightcurves([m, ...], params)             # one observation

``measure`` (per-frame stages: calibrate, place, seeing, photometry, flags, quality),
``lightcurves`` (differential photometry with comparison ensembles, errors, summaries),
``times`` (mid-exposure UTC to BJD_TDB), ``params`` (the knobs, and the pipeline version),
``transits`` (transit fits: one night, or a periodic transit over many), ``truth`` (checks
against the simulator, for tests and bench/).
"""

from panoptes_network.photometry.lightcurves import (COMPLETE, NOT_ENOUGH_FRAMES, ObservationResult, StarLightcurve,
                                                     build_lightcurves)
from panoptes_network.photometry.measure import (CHANNELS, FLAG_BAD_WCS, FLAG_EDGE, FLAG_NEIGHBOUR, FLAG_REJECTED,
                                                 FLAG_SATURATED, ORDERED_STAGES, FrameMeasurement, frame_fwhm,
                                                 measure_frame, observation_fwhm, picid_of)
from panoptes_network.photometry.params import PIPELINE_VERSION, PhotometryParams
from panoptes_network.photometry.times import bjd_tdb

__all__ = [
    "CHANNELS", "COMPLETE", "FLAG_BAD_WCS", "FLAG_EDGE", "FLAG_NEIGHBOUR", "FLAG_REJECTED", "FLAG_SATURATED",
    "NOT_ENOUGH_FRAMES", "ORDERED_STAGES", "PIPELINE_VERSION", "FrameMeasurement", "ObservationResult",
    "PhotometryParams", "StarLightcurve", "bjd_tdb", "build_lightcurves", "frame_fwhm", "measure_frame",
    "observation_fwhm", "picid_of",
]
