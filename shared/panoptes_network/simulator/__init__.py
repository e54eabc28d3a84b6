"""A sky simulator: frames as a PANOPTES unit records them, with the truth kept aside.

    from panoptes_network.simulator import FrameSpec, simulate_frame
    frame = simulate_frame(FrameSpec(ra=301.56, dec=44.46, time=datetime(2024, 3, 10, 8, tzinfo=timezone.utc)))
    frame.data          # uint16 (3476, 5208) RGGB mosaic
    frame.header        # the POCS header (no WCS; RA-MNT/DEC-MNT off the truth by a degree or two)
    frame.truth.wcs     # TAN-SIP, 0-based pixels
    frame.truth.stars   # one row per star: id, ra, dec, x, y, mag, electrons per channel, signal...
    frame.to_fits_bytes()

The noise floor of a star's photometry (issue 13), for an aperture of ``n`` pixels of one
channel and an annulus of ``m``::

    row = frame.truth.stars[i]
    light = (frame.truth.expected - frame.truth.sky)[aperture].sum() / row["scintillation"]  # or electrons_g
    floor = aperture_noise(light, n, row["sky_g"], frame.spec.exptime, row["airmass"],
                           frame.truth.site.elevation, background_pixels=m)
    floor.relative      # sigma / flux for one frame; floor.photon, .sky, .read, .scintillation in e-^2

Modules: ``camera`` (detector and optics), ``stars`` (catalog, colours, faint stars),
``atmosphere`` (extinction, sky brightness), ``observatory`` (sites, astropy geometry),
``signals`` (transits, variables), ``noise`` (the noise model, callable), ``frame``
(rendering), ``night`` (a sequence of frames).
"""

from panoptes_network.simulator.frame import FrameSpec, SimulatedFrame, Truth, simulate_frame
from panoptes_network.simulator.night import sequence_specs, simulate_sequence
from panoptes_network.simulator.noise import ApertureNoise, aperture_noise, pixel_variance, scintillation
from panoptes_network.simulator.observatory import SITES, Site, conditions, site_for
from panoptes_network.simulator.signals import Transit, Variable

__all__ = [
    "ApertureNoise", "FrameSpec", "SITES", "SimulatedFrame", "Site", "Transit", "Truth", "Variable",
    "aperture_noise", "conditions", "pixel_variance", "scintillation", "sequence_specs", "simulate_frame",
    "simulate_sequence", "site_for",
]
