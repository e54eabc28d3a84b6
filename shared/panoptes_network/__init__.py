"""The PANOPTES Network shared library: what every service imports.

- :mod:`~panoptes_network.ids`: bucket paths and the ids built from them
- :mod:`~panoptes_network.fits`: headers by range reads, lossless compression
- :mod:`~panoptes_network.messages`: Pub/Sub push envelopes, CloudEvents, storage notifications
- :mod:`~panoptes_network.ports`: bucket, topics, documents; adapters in
  :mod:`~panoptes_network.adapters`, chosen by :mod:`~panoptes_network.runtime`
- :mod:`~panoptes_network.pipeline`: the work each service does
- :mod:`~panoptes_network.stack`: the local stack and the ``panoptes-network`` command
"""

__version__ = "0.1.0"
