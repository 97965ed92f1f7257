"""A tiny real HTTP service for the core tests: says which instance answered.

``python tests/helpers/echo_service.py PORT NAME`` serves ``GET /<anything>`` with
``{"instance": NAME, "path": <path with query>, "deadline": <X-Deadline-Ms or null>}`` and
``GET /health`` with 200. Two paths misbehave on one instance only, so that a test can
break one of a fleet: ``/fail/NAME`` (instance NAME answers 503) and
``/slow/NAME/SECONDS`` (instance NAME answers after SECONDS).
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait between

    def do_GET(self):  # noqa: N802 - the name http.server asks for
        parts = self.path.split("?")[0].strip("/").split("/")
        status = 200
        if parts[:2] == ["fail", self.server.name]:
            status = 503
        elif parts[:2] == ["slow", self.server.name] and len(parts) > 2:
            time.sleep(float(parts[2]))
        body = b"OK" if self.path == "/health" else json.dumps(
            {"instance": self.server.name, "path": self.path,
             "deadline": self.headers.get("X-Deadline-Ms")}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.name = sys.argv[2]
    server.serve_forever()
