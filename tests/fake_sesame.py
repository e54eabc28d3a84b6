"""A stand-in for CDS Sesame on 127.0.0.1, answering in Sesame's own plain-text format.

The format is the one ``<mirror>/SNV?<name>`` returns (the request astropy's
``get_icrs_coordinates`` sends): a ``%J`` line with ICRS J2000 degrees for a known
name, a ``#! *** Nothing found ***`` line for an unknown one. The objects it knows are
whatever a test gives it; the positions are the test's, not a catalog's.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FOUND = """# {name}    #Q27816302
#=Si=Simbad, all IDs (via url):    1     2ms
%@ 3112448
%I.0 {identifier}
%C.0 PM*
%J {ra:.8f} {dec:+.8f} = {ra_hms} {dec_dms}
%J.E [12.3 11.6 90] A 2020yCat.1350....0G
%P -102.754 +161.990 [0.015 0.017 90] A 2020yCat.1350....0G
%#B 18


#====Done (2024-Mar-02,09:14:51z)====
"""

NOTHING = """# {name}    #Q27816311
#! *** Nothing found *** 
#====Done (2024-Mar-02,09:14:52z)====

"""


def _sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    from astropy.coordinates import Angle
    import astropy.units as u

    ra_text = Angle(ra, u.deg).to_string(unit=u.hourangle, sep=":", precision=2, pad=True)
    dec_text = Angle(dec, u.deg).to_string(unit=u.deg, sep=":", precision=1, pad=True, alwayssign=True)
    return ra_text, dec_text


class FakeSesame:
    """Serve ``/cgi-bin/nph-sesame/<db>?<name>``; ``mode`` is ``answer``, ``slow`` or ``error``."""

    def __init__(self, objects: dict[str, tuple[float, float, str]]):
        self.objects = {name.lower(): value for name, value in objects.items()}
        self.requests: list[str] = []
        self.mode = "answer"
        self.delay = 5.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                fake.requests.append(self.path)
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                if fake.mode == "error":
                    self.send_error(500, "Internal Server Error")
                    return
                name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).query)
                known = fake.objects.get(name.strip().lower())
                if known:
                    ra, dec, identifier = known
                    ra_hms, dec_dms = _sexagesimal(ra, dec)
                    body = FOUND.format(name=name, identifier=identifier, ra=ra, dec=dec,
                                        ra_hms=ra_hms, dec_dms=dec_dms)
                else:
                    body = NOTHING.format(name=name)
                encoded = body.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(encoded)))
                    self.end_headers()
                    self.wfile.write(encoded)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-sesame", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/cgi-bin/nph-sesame/"

    def start(self) -> FakeSesame:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A Sesame URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/cgi-bin/nph-sesame/"
