"""get-fits-header: the header of a FITS frame in a bucket, as JSON (Cloud Function gen2, HTTP).

GET ?bucket_path=...&bucket_name=...&hdu=N&format=json|cards, or POST the same as JSON.
Only the header's bytes are read, with range requests.
"""

import functions_framework

from panoptes_network import http
from panoptes_network.api import fits_header as api


@functions_framework.http
def get_fits_header(request):
    return http.serve_json(request, api.SERVICE, api.respond)
