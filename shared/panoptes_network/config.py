"""Names and switches, read from the environment.

Every bucket, topic and project name has the seed's default and one environment
variable to override it; the services' READMEs list the ones each reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "gcp")


@dataclass(frozen=True)
class Settings:
    backend: str
    data_dir: Path
    project: str
    raw_bucket: str
    rgb_bucket: str
    timelapse_bucket: str
    temp_bucket: str
    compress_topic: str
    record_topic: str
    rgb_topic: str
    uploads_topic: str
    dead_letter_topic: str
    plate_solve_topic: str = "plate-solve"
    processed_bucket: str = "panoptes-processed-images"
    process_observation_topic: str = "process-observation"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        backend = env.get("PANOPTES_BACKEND", "local").strip().lower() or "local"
        if backend not in BACKENDS:
            raise ValueError(f"PANOPTES_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
        return cls(
            backend=backend,
            data_dir=Path(env.get("PANOPTES_DATA_DIR", "panoptes-data")).expanduser().absolute(),
            project=env.get("GOOGLE_CLOUD_PROJECT", "panoptes-exp"),
            raw_bucket=env.get("RAW_BUCKET", "panoptes-raw-images"),
            rgb_bucket=env.get("RGB_BUCKET", "panoptes-rgb-images"),
            timelapse_bucket=env.get("TIMELAPSE_BUCKET", "panoptes-timelapse"),
            temp_bucket=env.get("TEMP_BUCKET", "panoptes-temp"),
            compress_topic=env.get("COMPRESS_FITS_TOPIC", "compress-fits"),
            record_topic=env.get("RECORD_IMAGE_TOPIC", "record-image"),
            rgb_topic=env.get("MAKE_RGB_FITS_TOPIC", "make-rgb-fits"),
            uploads_topic=env.get("RAW_UPLOADS_TOPIC", "panoptes-raw-images-uploaded"),
            dead_letter_topic=env.get("DEAD_LETTER_TOPIC", "panoptes-dead-letter"),
            plate_solve_topic=env.get("PLATE_SOLVE_TOPIC", "plate-solve"),
            processed_bucket=env.get("PROCESSED_BUCKET", "panoptes-processed-images"),
            process_observation_topic=env.get("PROCESS_OBSERVATION_TOPIC", "process-observation"),
        )

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.raw_bucket, self.rgb_bucket, self.timelapse_bucket, self.temp_bucket, self.processed_bucket)


def settings() -> Settings:
    """The settings of this process, read afresh so tests and the CLI can change them."""
    return Settings.from_env()


# The variables that carry each name, so that bin/deploy can give a deployed service the
# same names it used to create the topics and subscriptions.
NAME_VARIABLES = {
    "project": "GOOGLE_CLOUD_PROJECT",
    "raw_bucket": "RAW_BUCKET",
    "rgb_bucket": "RGB_BUCKET",
    "timelapse_bucket": "TIMELAPSE_BUCKET",
    "temp_bucket": "TEMP_BUCKET",
    "compress_topic": "COMPRESS_FITS_TOPIC",
    "record_topic": "RECORD_IMAGE_TOPIC",
    "rgb_topic": "MAKE_RGB_FITS_TOPIC",
    "uploads_topic": "RAW_UPLOADS_TOPIC",
    "dead_letter_topic": "DEAD_LETTER_TOPIC",
    "plate_solve_topic": "PLATE_SOLVE_TOPIC",
    "processed_bucket": "PROCESSED_BUCKET",
    "process_observation_topic": "PROCESS_OBSERVATION_TOPIC",
}


def name_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce these settings' names in another process."""
    return {variable: str(getattr(settings, field)) for field, variable in NAME_VARIABLES.items()}
