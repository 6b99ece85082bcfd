"""A real HTTP/1.1 file server on 127.0.0.1 (stdlib http.server, one thread per connection) whose routes
can misbehave on purpose: declare or send extra bytes, send wrong or fewer bytes, fail the first N
requests with a status or by dropping the connection mid-body, redirect. Optionally over TLS (trustme)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    data: bytes
    extra: bytes = b""  # sent after `data` (and counted in Content-Length unless chunked)
    corrupt: bool = False  # flip the first byte
    truncate: int = 0  # send this many bytes fewer (chunked only; a short Content-Length body just hangs)
    chunked: bool = False  # no Content-Length: Transfer-Encoding: chunked
    fail_first: int = 0  # the first N requests fail ...
    failure: str = "status"  # ... with `fail_status`, or "drop": headers, half the body, then close
    fail_status: int = 503
    redirect: str | None = None  # answer 302 to this location
    requests: int = 0
    headers: list[dict] = field(default_factory=list)  # request headers, per request

    def body(self) -> bytes:
        data = self.data
        if self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        body = data + self.extra
        return body[:len(body) - self.truncate] if self.truncate else body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            return self._plain(404, b"not found")
        with self.server.lock:
            route.requests += 1
            number = route.requests
            route.headers.append(dict(self.headers))
        if route.redirect:
            self.send_response(302)
            self.send_header("Location", route.redirect)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if number <= route.fail_first and route.failure == "status":
            return self._plain(route.fail_status, b"try later")
        body = route.body()
        if number <= route.fail_first and route.failure == "drop":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 64 << 10):
                piece = body[start:start + (64 << 10)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _plain(self, status: int, text: bytes):
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hangs up mid-body (it refused the blob) is expected; anything else is kept."""
        import sys

        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionResetError | BrokenPipeError):
            self.errors.append(exc)


class BlobServer:
    """`with BlobServer() as server: server.add("/x", Route(b"..."))`; `server.url("/x")`."""

    def __init__(self, tls=None):
        """`tls`: a trustme.LeafCert (from `ca.issue_cert("127.0.0.1")`) to serve https:// with."""
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.errors = []
        self.httpd.routes = {}
        self.httpd.lock = threading.Lock()
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.configure_cert(context)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="blob-server",
                                        daemon=True)

    def add(self, path: str, route: Route) -> Route:
        self.httpd.routes[path] = route
        return route

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> BlobServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)
        assert not self.httpd.errors, self.httpd.errors[0]
