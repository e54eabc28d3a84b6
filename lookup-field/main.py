"""lookup-field: a target's name or typed coordinates to ICRS RA/Dec degrees (Cloud Function gen2, HTTP).

GET ?search_string=..., or POST {"search_string": ...}. Offline catalogs first; CDS
Sesame online only when they fail.
"""

import functions_framework

from panoptes_network import http
from panoptes_network.api import lookup_field as api


@functions_framework.http
def lookup_field(request):
    return http.serve_json(request, api.SERVICE, api.respond)
