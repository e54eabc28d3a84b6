"""The Data Explorer's logic, behind the data-explorer service's pages and JSON API.

- :mod:`.search`: search parameters (checked, with the parameter named in each error)
  and observation search, with the cone search on the HEALPix index of :mod:`panoptes_network.sky`.
- :mod:`.stats`: the overview's totals and weekly numbers per unit.
- :mod:`.previews`: PNG previews of frames, made once and cached in a bucket.
- :mod:`.remote`: name resolution and FITS headers (issue #5's lookup and get-fits-header).
- :mod:`.api`: the ``/api`` Flask blueprint the pages and scripts use.

Plotting and PNG encoding need the data-explorer service's own requirements (plotly,
Pillow); nothing else in the shared library imports this package.
"""
