"""A plain WSGI app served by Python's wsgiref (standard library only), for the differential
security test (test/security). wsgiref turns every header name into an environ key by
upper-casing it and replacing "-" with "_", so `x_latchkey_team_id` and `x-latchkey-team-id`
both become HTTP_X_LATCHKEY_TEAM_ID (joined with "," when both arrive), as in CGI, PHP, Rack and
older Gunicorn. Routes on PATH_INFO, which wsgiref percent-decodes; GET routes answer HEAD, as
Flask's do.

Every handler run is recorded and served as JSON on a second, private port
(GET /runs?after=N). Prints one JSON line with both ports once it listens. Logs nothing else:
request lines carry query strings, and query strings can carry keys.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

runs = []
lock = threading.Lock()


def route(method, path):
    get = method in ("GET", "HEAD")
    if path == "/healthz":
        return "health"
    if path == "/events" and get:
        return "events"
    if path == "/ws" and get:
        return "ws"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    if path.startswith("/cron/") and method == "POST":
        return "cron"
    if path == "/items":
        if get:
            return "items.list"
        if method in ("POST", "PUT"):
            return "items.create"
        if method == "DELETE":
            return "items.delete"
    if path == "/" and get:
        return "home"
    return None


def app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 0:
        environ["wsgi.input"].read(length)
    handler = route(method, path)
    if handler is not None:
        identity = [[key, value] for key, value in environ.items() if key.startswith("HTTP_X_LATCHKEY_")]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        with lock:
            runs.append(
                {
                    "stack": "wsgi",
                    "caseId": environ.get("HTTP_X_CASE_ID"),
                    "handler": handler,
                    "method": method,
                    "routedPath": path,
                    "identityHeaders": identity,
                    "queryTokens": query.get("token", []),
                }
            )
    body = json.dumps({"ran": [] if handler is None else ["wsgi:" + handler]}).encode()
    start_response(
        "404 Not Found" if handler is None else "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(0 if method == "HEAD" else len(body)))],
    )
    return [b"" if method == "HEAD" else body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class RunsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        after = int(self.path.partition("after=")[2] or 0)
        with lock:
            chunk = runs[after:]
        body = json.dumps({"runs": chunk, "next": after + len(chunk)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    control = HTTPServer(("127.0.0.1", 0), RunsHandler)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_port, "runsPort": control.server_port}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
