"""The work of the public HTTP services, one module per service: parameters in, payload out.

Each ``respond(params)`` returns the success payload or raises
:class:`panoptes_network.http.HttpError`; the service's ``main.py`` wraps it with
:func:`panoptes_network.http.serve_json`.
"""
