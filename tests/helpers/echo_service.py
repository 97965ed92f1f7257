"""A tiny real HTTP service for the core tests: says which instance answered.

``python tests/helpers/echo_service.py PORT NAME`` serves ``GET /<anything>`` with
``{"instance": NAME, "path": <path with query>}`` and ``GET /health`` with 200.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - the name http.server asks for
        body = b"OK" if self.path == "/health" else json.dumps(
            {"instance": self.server.name, "path": self.path}).encode()
        self.send_response(200)
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
