"""A local Datadog intake on 127.0.0.1 for tests: a real threaded HTTP server that records requests.

Serves what the proctor talks to: LLM Observability spans and evaluations, v2 metric series,
v1 dashboards and monitors (create answers with the echoed body plus an id, so the client
models validate; list endpoints make setup idempotent). ``mode``: "ok", "error" (every
request answers 500) or "hang" (every request sleeps ``hang_s`` first).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Intake:
    mode: str = "ok"
    hang_s: float = 30.0
    requests: list[Recorded] = field(default_factory=list)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def reset(self, mode: str = "ok") -> None:
        """Forget what was recorded and switch mode (releases requests hanging in "hang" mode)."""
        with self.lock:
            self.stop.set()
            self.stop = threading.Event()
            self.mode = mode
            self.requests.clear()
            self.dashboards.clear()
            self.monitors.clear()

    def posted(self, path_prefix: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if r.method in ("POST", "PUT") and r.path.startswith(path_prefix)]

    def llmobs_spans(self) -> list[dict[str, Any]]:
        out = []
        for body in self.posted("/api/v2/llmobs"):
            for event in body if isinstance(body, list) else [body]:
                out.extend(event.get("spans", []))
        return out

    def evaluations(self) -> list[dict[str, Any]]:
        return [m for b in self.posted("/api/intake/llm-obs/v2/eval-metric") for m in b["data"]["attributes"]["metrics"]]

    def series(self) -> list[dict[str, Any]]:
        return [s for b in self.posted("/api/v2/series") for s in b["series"]]

    def wait_for(self, pred: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return False


def _decode(headers: Any, raw: bytes) -> Any:
    enc = (headers.get("content-encoding") or "").lower()
    if enc == "gzip":
        raw = gzip.decompress(raw)
    elif enc == "deflate":
        raw = zlib.decompress(raw)
    elif enc == "zstd":
        import zstandard

        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw


def _handler(intake: Intake) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            return None

        def _reply(self, code: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            n = int(self.headers.get("content-length") or 0)
            body = _decode(self.headers, self.rfile.read(n)) if n else None
            path = self.path.split("?")[0]
            with intake.lock:
                intake.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            mode, stop = intake.mode, intake.stop
            if mode == "hang":
                stop.wait(intake.hang_s)
            if mode in ("error", "hang"):
                self._reply(500, {"errors": ["intake unavailable"]})
                return
            m = self.command
            if path.startswith("/api/v1/dashboard"):
                return self._dashboards(m, path, body)
            if path.startswith("/api/v1/monitor"):
                return self._monitors(m, path, body)
            if m == "POST":
                return self._reply(202, {"errors": []} if path == "/api/v2/series" else {})
            self._reply(404, {"errors": ["not found"]})

        def _dashboards(self, m: str, path: str, body: Any) -> None:
            parts = path.rstrip("/").split("/")
            if m == "GET" and len(parts) == 4:
                summaries = [{"id": k, "title": d["title"], "layout_type": d.get("layout_type", "ordered")}
                             for k, d in intake.dashboards.items()]
                return self._reply(200, {"dashboards": summaries})
            if m == "POST" and len(parts) == 4:
                did = f"abc-{len(intake.dashboards) + 100:03d}-xyz"
                intake.dashboards[did] = dict(body, id=did)
                return self._reply(200, intake.dashboards[did])
            did = parts[4]
            if did not in intake.dashboards:
                return self._reply(404, {"errors": ["Dashboard not found"]})
            if m == "PUT":
                intake.dashboards[did] = dict(body, id=did)
            return self._reply(200, intake.dashboards[did])

        def _monitors(self, m: str, path: str, body: Any) -> None:
            parts = path.rstrip("/").split("/")
            if m == "GET" and len(parts) == 4:
                return self._reply(200, list(intake.monitors.values()))
            if m == "POST" and len(parts) == 4:
                mid = 1000 + len(intake.monitors)
                intake.monitors[mid] = dict(body, id=mid)
                return self._reply(200, intake.monitors[mid])
            mid = int(parts[4])
            if mid not in intake.monitors:
                return self._reply(404, {"errors": ["Monitor not found"]})
            if m == "PUT":  # an update request may omit fields: keep them
                intake.monitors[mid] = {**intake.monitors[mid], **body, "id": mid}
            return self._reply(200, intake.monitors[mid])

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return H


@contextmanager
def serve_intake(mode: str = "ok", hang_s: float = 30.0) -> Iterator[Intake]:
    intake = Intake(mode=mode, hang_s=hang_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(intake))
    server.daemon_threads = True
    intake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="dd-intake", daemon=True)
    thread.start()
    try:
        yield intake
    finally:
        intake.stop.set()
        server.shutdown()
        server.server_close()
