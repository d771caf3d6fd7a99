"""Serve a folder (default: www/) on 127.0.0.1 for development and the browser tests.

Python's http.server with the right MIME types for ES modules and wasm (so the browser can
stream-compile the module), no caching surprises while developing (every response is
revalidated; unchanged files answer 304), and an optional log of every request.

Usage: python3 www/serve.py [--port 8000] [--root www] [--log requests.txt]
"""

import argparse
import functools
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
    }
    log_file = None

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        if self.log_file:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A browser that stops a download (an aborted load, a closed tab) resets the
        # connection: not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--root", default=here, help="folder to serve (default: www/)")
    p.add_argument("--log", help="append one line per request to this file")
    a = p.parse_args()
    Handler.log_file = a.log
    handler = functools.partial(Handler, directory=os.path.abspath(a.root))
    server = Server(("127.0.0.1", a.port), handler)
    print(f"serving {os.path.abspath(a.root)} on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
