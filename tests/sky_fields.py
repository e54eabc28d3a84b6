"""Full-size simulated fields across the sky, for the solver's test and its benchmark.

Each field is rendered by the sky simulator as a unit records it (full 5208 x 3476 RGGB
frame, no WCS, the mount's position off the truth), seen on the meridian from a site
whose latitude puts it high in the sky, with the Moon down: the sky's geometry is
what varies, not the weather, except where a field asks for 30% cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np


@dataclass(frozen=True)
class SkyField:
    name: str
    ra: float
    dec: float
    rotation_deg: float = 0.0
    cloud: float = 0.0

    def spec(self, seed: int = 1):
        from panoptes_network.simulator import FrameSpec, Site
        from panoptes_network.simulator.observatory import Conditions

        latitude = float(np.clip(self.dec, -60.0, 60.0))
        altitude = 90.0 - abs(latitude - self.dec)
        site = Site("PAN001", "a site with this field near the zenith", latitude, 0.0, 2000.0, ("14d3bd", "ee04d1"))
        conditions = Conditions(
            lst_deg=self.ra, altitude=altitude, airmass=1.0 / np.sin(np.radians(altitude)), hour_angle=0.0,
            moon_ra=(self.ra + 180.0) % 360.0, moon_dec=-self.dec, moon_altitude=-30.0, moon_separation=150.0,
            moon_fraction=0.2, sun_altitude=-30.0)
        return FrameSpec(ra=self.ra, dec=self.dec, rotation_deg=self.rotation_deg, cloud=self.cloud, seed=seed,
                         time=datetime(2024, 6, 1, 8, tzinfo=timezone.utc), site=site, conditions=conditions)


FIELDS = (
    # Near both celestial poles.
    SkyField("north pole", 0.0, 89.6, 15.0),
    SkyField("north polar cap", 123.0, 86.0, 250.0),
    SkyField("south pole", 200.0, -89.5, 300.0),
    SkyField("south polar cap", 45.0, -86.5, 90.0),
    # In the galactic plane (dense, crowded, some with cloud).
    SkyField("Aquila", 285.0, 0.0, 37.0),
    SkyField("Cygnus", 305.0, 40.0, 0.0),
    SkyField("Cygnus, cloud", 310.0, 42.0, 180.0, 0.3),
    SkyField("Sagittarius", 270.0, -28.0, 90.0),
    SkyField("Carina", 160.0, -60.0, 120.0),
    SkyField("Crux", 187.0, -60.0, 270.0, 0.3),
    SkyField("Cassiopeia", 10.0, 60.0, 45.0),
    SkyField("anticentre", 88.0, 25.0, 0.0),
    SkyField("Monoceros", 105.0, -5.0, 200.0),
    SkyField("Scorpius", 250.0, -40.0, 330.0),
    # Sparse, high galactic latitude.
    SkyField("north galactic pole", 192.9, 27.1, 0.0),
    SkyField("south galactic pole", 0.9, -27.1, 60.0),
    SkyField("Ursa Major", 165.0, 55.0, 300.0),
    SkyField("Sculptor", 15.0, -33.0, 0.0, 0.3),
    SkyField("Fornax", 45.0, -35.0, 135.0),
    SkyField("Coma", 195.0, 20.0, 225.0, 0.3),
    SkyField("Virgo", 190.0, 5.0, 10.0),
    SkyField("Pisces", 15.0, 10.0, 350.0),
    SkyField("Eridanus", 60.0, -20.0, 0.0),
    SkyField("Draco", 260.0, 65.0, 160.0),
    # Elsewhere, and KIC 8462852's field as the real frames have it.
    SkyField("KIC 8462852", 301.56, 44.46, 90.0),
    SkyField("Hydra", 140.0, -10.0, 75.0),
    SkyField("Pegasus", 340.0, 20.0, 0.0),
    SkyField("Puppis", 120.0, -40.0, 100.0, 0.3),
    SkyField("Hercules", 255.0, 30.0, 210.0),
    SkyField("Grus", 335.0, -45.0, 0.0),
)


def grid_error_arcsec(solution, truth, shape) -> np.ndarray:
    """Distances between where a solution and the truth put 100 points over the frame."""
    from panoptes_network.solve.sip import sky_error_arcsec

    return sky_error_arcsec(solution, truth, shape, points_a_side=10)
