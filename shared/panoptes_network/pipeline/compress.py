"""compress-fits: ``PATH.fits`` -> ``PATH.fits.fz``, and the original removed only after.

The order makes every crash and every redelivery harmless:

1. read the ``.fits`` (remembering its generation);
2. compress and verify the round trip pixel for pixel, in memory; a file that cannot be
   compressed losslessly is dead-lettered on this first attempt (the bytes decide, so a
   retry would only fail again), the original kept;
3. write ``PATH.fits.fz`` only if absent; if it exists, it must hold the same pixels;
4. check the stored ``.fz`` is the bytes we verified (the bucket port checks the upload's
   CRC32C, as Cloud Storage recommends, at a tenth of MD5's cost; its size is checked here);
5. delete the ``.fits``, only if it is still the generation we compressed.

If the ``.fits`` is gone and the ``.fz`` is there, the job was done before: acknowledge.
"""

from __future__ import annotations

from panoptes_network import crashpoints, fits, runtime
from panoptes_network.config import Settings
from panoptes_network.deadletter import PermanentError
from panoptes_network.pipeline import job_path
from panoptes_network.ports.bucket import ONLY_IF_ABSENT, ObjectNotFound, PreconditionFailed

FITS_CONTENT_TYPE = "application/fits"


class UploadCorrupted(RuntimeError):
    """The stored object is not the bytes sent: retry."""


def compressed_path(bucket_path: str) -> str:
    return bucket_path + ".fz"


def compress_object(bucket_path: str, settings: Settings) -> dict:
    path = job_path(bucket_path, (".fits",), "compress-fits")
    raw = runtime.bucket(settings.raw_bucket, settings)
    target = compressed_path(bucket_path)
    outcome = {"bucket_path": bucket_path, "compressed_path": target, "image_id": path.image_id,
               "sequence_id": path.sequence_id}

    try:
        original = raw.info(bucket_path)
        data = raw.read(bucket_path, if_generation_match=original.generation)
    except ObjectNotFound:
        if raw.exists(target):
            return {**outcome, "outcome": "already compressed"}
        raise PermanentError(f"gs://{settings.raw_bucket}/{bucket_path} does not exist, nor does its .fz") from None
    crashpoints.reached("compress-fits:read")

    try:
        compressed = fits.compress(data)
        fits.verify_compressed(data, compressed)
    except (fits.NotFitsError, fits.UnsupportedFitsError) as error:
        raise PermanentError(f"{bucket_path}: {error}") from None
    except MemoryError:
        raise  # another instance may have the memory: retry
    except Exception as error:
        # Compressing and verifying work on the bytes in hand, no I/O: whatever failed
        # fails again on every redelivery, so the file gets its verdict now.
        raise PermanentError(f"{bucket_path}: not compressed, as it could not be done losslessly; the original is "
                             f"kept: {type(error).__name__}: {error}") from None
    crashpoints.reached("compress-fits:compressed")

    try:
        stored = raw.write(target, compressed.data, if_generation_match=ONLY_IF_ABSENT, checksum="crc32c",
                           content_type=FITS_CONTENT_TYPE,
                           metadata={"compressed_from_generation": str(original.generation)})
        expected_size = len(compressed.data)
    except PreconditionFailed:
        existing = raw.read(target)
        if existing != compressed.data:
            try:
                fits.verify_compressed(data, existing)
            except (ValueError, fits.NotFitsError) as error:
                raise PermanentError(
                    f"{target} already exists and does not hold the pixels of {bucket_path} ({error});"
                    " both kept for a person to decide"
                ) from None
        stored, expected_size = raw.info(target), len(existing)
        outcome["outcome"] = "compressed (found existing .fz)"
    # The bucket port checks the upload's CRC32C itself (see Bucket.write); the size is a
    # last look before the original goes.
    if stored.size != expected_size:
        raise UploadCorrupted(f"{target}: stored {stored.size} bytes, not {expected_size}")

    try:
        raw.delete(bucket_path, if_generation_match=original.generation)
    except ObjectNotFound:
        pass  # a redelivery deleted it already
    except PreconditionFailed:
        # A new .fits arrived under the same name; its own finalize event compresses it.
        outcome["outcome"] = "compressed; original replaced meanwhile, kept"
    crashpoints.reached("compress-fits:deleted")
    return {
        "outcome": "compressed",
        **outcome,
        "original_bytes": len(data),
        "compressed_bytes": stored.size,
    }
