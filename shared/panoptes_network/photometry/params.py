"""The knobs of a photometry run, in one frozen dataclass.

Its :meth:`PhotometryParams.to_dict` is what the run id hashes (with
:data:`PIPELINE_VERSION`), so every field that changes a result belongs here.
Radii are in mosaic pixels as multiples of the frame's measured FWHM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PIPELINE_VERSION = "photometry-8"  # 2: the FWHM within 1.5 FWHM (steady), apertures rescaled to keep their size
# 3: differential extinction (each star's airmass minus its ensemble's) fitted per channel and divided out
# 4: the annulus's sky a plane fitted with the other catalog stars masked and a window fixed in ADU (its bias
#    no longer follows the sky's noise); the seeing stars chosen by magnitude, less a sky fitted as the annulus's (the FWHM no longer
#    follows the sky and its noise: it reads 5% narrower, and the multipliers here grow 5% to keep the radii)
# 5: blends: each star's flux put in its own units, less the share of its aperture's light that its
#    catalog magnitude does not account for (uncatalogued neighbours diluted transits by up to 40%)
# 6: the annulus's window round its plane tapered at its edge (a linear ramp), so a faint star's wing pixel
#    crossing it as the field drifts fades out instead of making the sky level jump
# 7: every frame's aperture at aperture_fwhm x the observation's median FWHM (read off a bracket of two sums),
#    not the frame's own FWHM, whose measurement wanders 0.3% and took neighbours at the edge in and out
# 8: hot pixels taken off before anything is measured (photometry.hotpixels): their map from the observation's
#    own frames and its camera's other observations, each one's level scaled to the frame; the annulus's sky a
#    least-squares plane over all of it (soft edges, only pixels 1,000 ADU off left out), at the observation's
#    median FWHM (a window of 150 ADU round the plane drifted with airmass and the field's pixel phase)


@dataclass(frozen=True)
class PhotometryParams:
    # Apertures (multiples of the measured FWHM, mosaic pixels).
    # The FWHM (measure.Seeing) reads ~4.63 px on the simulator's 4.2 px core + halo (4.85 in
    # photometry-2 and -3, 6.2 before): the radii here (and neighbour_fwhm, max_fwhm_px) are the
    # old ones in pixels.
    aperture_fwhm: float = 2.0  # radius of the star's aperture (1.9 in photometry-2 and -3); x the observation's
    # median FWHM from photometry-7, each frame's within APERTURE_BRACKET of its own
    annulus_inner_fwhm: float = 4.0  # the local sky annulus (3.8 and 6.4 in photometry-2 and -3)
    annulus_outer_fwhm: float = 6.75
    edge_margin_px: float = 0.0  # extra room from the edge beyond the annulus before FLAG_EDGE
    neighbour_fwhm: float = 2.0  # a brighter catalog star within aperture + this x FWHM sets FLAG_NEIGHBOUR
    background_mesh_px: int = 32  # sep background mesh, in pixels of one Bayer channel plane
    # Per-frame quality: a frame failing one of these is rejected with the reason.
    max_fwhm_px: float = 9.0  # 12 before photometry-2, 9.5 before photometry-4
    max_wcs_offset_px: float = 2.0  # median measured centroid - WCS position of bright stars
    max_background_adu: float = 6000.0  # above bias: twilight, the Moon in the field
    min_stars: int = 10  # measured with no flag
    # Per observation.
    min_frames: int = 10
    min_transparency: float = 0.4  # relative to the observation's clearest frames
    max_fwhm_ratio: float = 2.0  # a frame's FWHM over the observation's median
    comparisons: int = 25  # ensemble size per target
    comparison_mag_scale: float = 0.75  # mag: the ensemble metric's unit in brightness
    comparison_colour_scale: float = 0.3  # mag of -2.5 log10(b/r): its unit in colour
    comparison_distance_scale_deg: float = 1.5  # its unit in distance
    comparison_min_coverage: float = 0.9  # fraction of frames a comparison star must be unflagged in
    variable_threshold: float = 2.0  # a star whose RMS exceeds this x its expected noise is no comparison
    ensemble_iterations: int = 3
    correct_extinction: bool = True  # fit k per channel against each star's airmass - its ensemble's, divide it out
    decorrelate: bool = False  # fit out airmass, drift and FWHM trends per star
    correct_blends: bool = True  # each star's flux in its own units, less the light its catalog magnitude does not explain
    outlier_sigma: float = 5.0  # points further than this from the median are flagged 16 in the summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "PhotometryParams":
        """From a message's ``params``; unknown names are an error (a typo must not run silently)."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown photometry parameters: {', '.join(unknown)} (known: {', '.join(known)})")
        typed = {}
        for name, value in values.items():
            kind = type(getattr(cls(), name))
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            try:
                typed[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a {kind.__name__}, not {value!r}") from None
        return cls(**typed)
