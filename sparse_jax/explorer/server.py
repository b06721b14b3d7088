"""A small HTTP server for the explorer page, bound to 127.0.0.1 (stdlib only).

Why not Gradio here: the page is one static HTML file with inline CSS/JS and system fonts, so it
works offline by construction (no CDN, no web-font host), adds no dependency, and a slider move is
one POST whose cost is the generator itself. Routes:
  GET  /             the page
  GET  /api/info     generator shape, direction sets, attribute names
  POST /api/render   {seed, psi, sliders: [{set, index, sigma, start, end}], compare} ->
                     {images: [base64 PNG], w_distance, predictions: [{attr: p}]}
  POST /api/export   the same + {name} -> {files: [...]} written under the export folder
"""
from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sparse_jax.explorer.engine import Explorer, Slider

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")


def _request(body: dict[str, Any]) -> tuple[int, float, list[Slider], int | None]:
    sliders = [Slider(set=int(s["set"]), index=int(s["index"]), sigma=float(s["sigma"]),
                      start=int(s.get("start", 0)),
                      end=None if s.get("end") is None else int(s["end"]))
               for s in body.get("sliders", [])]
    compare = body.get("compare")
    return (int(body.get("seed", 0)), float(body.get("psi", 1.0)), sliders,
            None if compare is None else int(compare))


def make_handler(explorer: Explorer, export_dir: str):
    lock = threading.Lock()  # one render at a time: JAX calls are not worth interleaving

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: no line per request
            pass

        def _send(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, obj: Any, code: int = 200) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path in ("/", "/index.html"):
                with open(PAGE, "rb") as f:
                    self._send(200, f.read(), "text/html; charset=utf-8")
            elif self.path == "/api/info":
                self._json(explorer.info())
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self):  # noqa: N802
            try:
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                seed, psi, sliders, compare = _request(body)
                with lock:
                    if self.path == "/api/render":
                        out = explorer.render(seed, psi, sliders, compare)
                        self._json({"images": [base64.b64encode(p).decode() for p in
                                               out["images"]],
                                    "w_distance": out["w_distance"],
                                    "predictions": out["predictions"]})
                    elif self.path == "/api/export":
                        files = explorer.export(export_dir, str(body.get("name", "")), seed,
                                                psi, sliders)
                        self._json({"files": files})
                    else:
                        self._send(404, b"not found", "text/plain")
            except (ValueError, KeyError, TypeError) as e:
                self._json({"error": str(e)}, 400)

    return Handler


def serve(explorer: Explorer, export_dir: str, port: int = 0) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:port (0: a free port); call serve_forever() on it."""
    os.makedirs(export_dir, exist_ok=True)
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(explorer, export_dir))
