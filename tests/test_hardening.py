"""The proctor on a public endpoint: API keys, body cap, strict JSON, evaluation cap, graceful
shutdown. Real uvicorn servers on 127.0.0.1 (the shutdown test runs the proctor in a subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.results.store import Store
from evaluator_agent.service.client import ProctorTaskFailed, call_proctor
from evaluator_agent.service.guard import MAX_JSON_DEPTH
from tests.conftest import bound_socket, serve_app
from tests.targets import build_targets_app

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
A2A = {"A2A-Version": "1.0", "Content-Type": "application/json"}
MiB = 1024 * 1024


def _proctor(db: Path, **kw: Any):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base, **kw)


def _rpc(method: str, params: dict[str, Any], rid: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def _send_message(obj: dict[str, Any], *extra_parts: dict[str, Any]) -> dict[str, Any]:
    msg = {"messageId": "m-" + str(time.monotonic_ns()), "role": "ROLE_USER", "parts": [{"data": obj}, *extra_parts]}
    return _rpc("SendMessage", {"message": msg})


async def _fast(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"diagnosis": {"no_fault": True}}


# ----------------------------------------------------------------------------- raw HTTP


def _raw_sync(base: str, head: str, chunks: Iterable[bytes] | None = None) -> tuple[int, dict[str, str], bytes, int]:
    """Send a request head and a chunked body (pumped by a thread while the response is read, as a
    careful client does); returns (status, headers, body, body bytes sent)."""
    u = urlsplit(base)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.sendall(head.encode())
    sent = 0

    def pump() -> None:
        nonlocal sent
        try:
            for chunk in chunks or ():
                sock.sendall(b"%x\r\n" % len(chunk))
                sock.sendall(chunk)
                sock.sendall(b"\r\n")
                sent += len(chunk)
            if chunks is not None:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            assert data, f"connection closed before a response: {buf!r}"
            buf += data
        head_part, _, rest = buf.partition(b"\r\n\r\n")
        lines = head_part.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        need = int(headers.get("content-length", "0"))
        while len(rest) < need:
            data = sock.recv(65536)
            assert data, "connection closed in the response body"
            rest += data
    finally:
        with contextlib.suppress(OSError):  # the server may have reset it already
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        pumping.join(10)
    return int(lines[0].split()[1]), headers, rest[:need], sent


async def _raw(base: str, head: str, chunks: Iterable[bytes] | None = None) -> tuple[int, dict[str, str], bytes, int]:
    return await asyncio.to_thread(_raw_sync, base, head, chunks)


class RssSampler:
    """Peak resident memory of this process while the block runs (a thread reads /proc)."""

    def __enter__(self) -> RssSampler:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    @property
    def growth(self) -> int:
        return self.peak - self.base


# ----------------------------------------------------------------------------- API keys


async def test_api_keys_guard_the_a2a_routes_but_not_card_or_health(tmp_path) -> None:
    async with serve_app(lambda b: build_targets_app(b, {"fast": (_fast, False)})) as targets, \
            serve_app(_proctor(tmp_path / "p.db", api_keys=["k-one", "k-two"])) as proctor, httpx.AsyncClient() as http:
        card = (await http.get(f"{proctor}/.well-known/agent-card.json")).json()
        assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
        assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
        assert (await http.get(f"{proctor}/health")).status_code == 200

        body = _send_message({"action": "list_labelsets"})
        r = await http.post(proctor + "/", json=body, headers=A2A)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "error=" not in r.headers["www-authenticate"]  # RFC 6750: no error code without credentials
        assert r.json()["error"]["code"] == -32000 and "Authorization: Bearer" in r.json()["error"]["message"]
        r = await http.post(proctor + "/", json=body, headers=A2A | {"Authorization": "Bearer k-three"})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        assert "not valid" in r.json()["error"]["message"]
        r = await http.post(proctor + "/", json=body, headers=A2A | {"Authorization": "Basic azpr"})
        assert r.status_code == 401
        r = await http.post(proctor + "/v1/message:send", json=body["params"], headers=A2A)
        assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
        assert (await http.get(f"{proctor}/v1/tasks/nope", headers=A2A)).status_code == 401

        from a2a.client.errors import A2AClientError

        for streaming in (True, False):
            with pytest.raises(A2AClientError, match="401"):
                await call_proctor(proctor, {"action": "list_labelsets"}, streaming=streaming)
        listing = await call_proctor(proctor, {"action": "list_labelsets"}, headers={"Authorization": "Bearer k-two"})
        assert "smoke" in {x["name"] for x in listing["labelsets"]}
        label = load_labelset("smoke").labels[0].id
        result = await call_proctor(proctor, {"target": f"{targets}/fast/.well-known/agent-card.json", "labels": [label]},
                                    headers={"Authorization": "Bearer k-one"})
        assert result["summary"]["n"] == 1 and result["status"] == "completed"


async def test_api_keys_from_env_and_open_by_default(tmp_path, monkeypatch) -> None:
    from evaluator_agent.service.server import create_app

    body = _send_message({"action": "list_labelsets"})
    monkeypatch.setenv("PROCTOR_API_KEYS", " env-key , ")
    async with serve_app(lambda b: create_app(str(tmp_path / "a.db"), public_url=b)) as proctor, httpx.AsyncClient() as http:
        assert (await http.post(proctor + "/", json=body, headers=A2A)).status_code == 401
        ok = await http.post(proctor + "/", json=body, headers=A2A | {"Authorization": "bearer env-key"})
        assert ok.status_code == 200 and ok.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    monkeypatch.setenv("PROCTOR_API_KEYS", "")
    async with serve_app(lambda b: create_app(str(tmp_path / "b.db"), public_url=b)) as proctor, httpx.AsyncClient() as http:
        assert "securitySchemes" not in (await http.get(f"{proctor}/.well-known/agent-card.json")).json()
        assert (await http.post(proctor + "/", json=body, headers=A2A)).status_code == 200


# ----------------------------------------------------------------------------- body cap


async def test_oversized_bodies_get_413_without_being_buffered(tmp_path) -> None:
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient(timeout=20) as http:
        host = urlsplit(proctor).netloc
        # A declared length over the cap: refused before a byte of body is sent.
        status, headers, body, _ = await _raw(proctor, f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                                                       f"A2A-Version: 1.0\r\nContent-Length: {200 * MiB}\r\n\r\n")
        assert status == 413 and headers.get("connection") == "close"
        assert json.loads(body)["error"]["data"]["max_body_bytes"] == MiB

        # 200 MB chunked (the same 1 MiB chunk over and over: the client holds 1 MiB): 413 as soon
        # as the cap is passed, and the server's memory stays flat.
        chunk = b" " * MiB
        with RssSampler() as rss:
            status, headers, body, sent = await _raw(
                proctor, f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nA2A-Version: 1.0\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n", (chunk for _ in range(200)))
        assert status == 413 and "payload too large" in json.loads(body)["error"]["message"]
        assert sent < 50 * MiB, f"the server kept reading: {sent} bytes sent"
        assert rss.growth < 50 * MiB, f"memory grew by {rss.growth / MiB:.0f} MiB"

        # REST gets the same cap; just under the cap works.
        r = await http.post(f"{proctor}/v1/message:send", content=b" " * (MiB + 1), headers=A2A)
        assert r.status_code == 413 and r.json()["error"]["code"] == 413
        skeleton = json.dumps(_send_message({"action": "list_labelsets"}, {"text": ""})).encode()
        pad = MiB - len(skeleton) - 1
        big = json.dumps(_send_message({"action": "list_labelsets"}, {"text": "x" * pad})).encode()
        assert len(big) == MiB - 1
        r = await http.post(proctor + "/", content=big, headers=A2A)
        assert r.status_code == 200 and r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        r = await http.post(proctor + "/", content=big + b"  ", headers=A2A)
        assert r.status_code == 413


async def test_body_cap_is_configurable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROCTOR_MAX_BODY_BYTES", "2000")
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        ok = await http.post(proctor + "/", json=_send_message({"action": "list_labelsets"}), headers=A2A)
        assert ok.status_code == 200
        big = await http.post(proctor + "/", json=_send_message({"action": "list_labelsets"}, {"text": "x" * 2000}), headers=A2A)
        assert big.status_code == 413


# ----------------------------------------------------------------------------- malformed JSON


async def test_malformed_non_utf8_and_deep_json_get_proper_jsonrpc_errors(tmp_path) -> None:
    deep_array = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    cases = [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700),
        (b'\xff\xfe{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}', -32700),
        ('{"jsonrpc": "2.0", "id": 1, "method": "caf\u00e9"}'.encode("latin-1"), -32700),
        (deep_array, -32600),
        (deep_object, -32600),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), -32600),
    ]
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        with RssSampler() as rss:
            for _ in range(5):  # again and again: nothing accumulates
                for body, code in cases:
                    r = await http.post(proctor + "/", content=body, headers=A2A)
                    assert r.status_code == 200, r.text
                    doc = r.json()
                    assert doc["jsonrpc"] == "2.0" and doc["id"] is None and doc["error"]["code"] == code, (body[:40], doc)
                    if code == -32600:
                        assert doc["error"]["data"] == {"max_depth": MAX_JSON_DEPTH}
        assert rss.growth < 30 * MiB, f"memory grew by {rss.growth / MiB:.0f} MiB"
        # At the limit is fine: a2a-sdk then judges the request itself (not a JSON-RPC object: -32600).
        r = await http.post(proctor + "/", content=b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, headers=A2A)
        assert r.json()["error"]["code"] == -32600 and r.json()["error"].get("data") != {"max_depth": MAX_JSON_DEPTH}
        # Strings full of brackets are text, not nesting.
        tricky = _send_message({"action": "list_labelsets"}, {"text": "[[{{\\\"" * 500})
        r = await http.post(proctor + "/", json=tricky, headers=A2A)
        assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        # REST: HTTP 400 with a JSON error.
        for body in (b"{not json", b"\xff\xfe{}", deep_array):
            r = await http.post(f"{proctor}/v1/message:send", content=body, headers=A2A)
            assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
        # The server still serves.
        listing = await call_proctor(proctor, {"action": "list_labelsets"})
        assert "smoke" in {x["name"] for x in listing["labelsets"]}


# ----------------------------------------------------------------------------- evaluation cap


async def test_evaluation_cap_answers_busy_and_frees_its_slot(tmp_path) -> None:
    release = asyncio.Event()

    async def slow(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        await asyncio.wait_for(release.wait(), 20)
        return {"diagnosis": {"no_fault": True}}

    apps: list[Any] = []

    def make(base: str) -> Any:
        apps.append(_proctor(tmp_path / "p.db", max_evaluations=1)(base))
        return apps[-1]

    label = load_labelset("smoke").labels[0].id
    async with serve_app(lambda b: build_targets_app(b, {"slow": (slow, False), "fast": (_fast, False)})) as targets, \
            serve_app(make) as proctor:
        state = apps[0].state.proctor
        first = asyncio.create_task(call_proctor(proctor, {"target": f"{targets}/slow/.well-known/agent-card.json",
                                                           "labels": [label]}))
        while state.life.active < 1:
            await asyncio.sleep(0.01)
        seen: list[dict[str, Any]] = []
        with pytest.raises(ProctorTaskFailed, match=r"busy: 1 evaluations in progress \(limit 1\); retry later"):
            await call_proctor(proctor, {"target": f"{targets}/fast/.well-known/agent-card.json", "labels": [label]},
                               on_progress=seen.append)
        assert seen[-1]["code"] == "busy" and seen[-1]["retry_after_s"] > 0 and seen[-1]["error"].startswith("busy")
        # A bad request is told what is wrong with it, busy or not.
        with pytest.raises(ProctorTaskFailed, match="unknown label set|no label set|nosuchset"):
            await call_proctor(proctor, {"target": f"{targets}/fast/.well-known/agent-card.json", "labelset": "nosuchset"})
        with pytest.raises(ProctorTaskFailed, match="attempts"):
            await call_proctor(proctor, {"target": f"{targets}/fast/.well-known/agent-card.json", "attempts": -1})
        # Other actions are never refused.
        listing = await call_proctor(proctor, {"action": "list_labelsets"})
        assert "smoke" in {x["name"] for x in listing["labelsets"]}
        release.set()
        done = await first
        assert done["status"] == "completed"
        assert state.life.active == 0 and state.life.idle.is_set()
        again = await call_proctor(proctor, {"target": f"{targets}/fast/.well-known/agent-card.json", "labels": [label]})
        assert again["status"] == "completed"
        # A failing evaluation releases its slot too.
        with pytest.raises(ProctorTaskFailed, match="unreachable|cannot evaluate"):
            await call_proctor(proctor, {"target": "http://127.0.0.1:9/x/.well-known/agent-card.json"})
        assert state.life.active == 0


async def test_investigations_in_flight_are_capped_across_evaluations(tmp_path) -> None:
    """One request may ask for concurrency 128; the process-wide cap holds all evaluations together."""
    live, peak = 0, 0
    full = asyncio.Event()  # the first investigations wait for each other, so the peak is reached

    async def counted(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        if live >= 3:
            full.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(full.wait(), 5)
        await asyncio.sleep(0.01)
        live -= 1
        return {"diagnosis": {"no_fault": True}}

    n = len(load_labelset("smoke").labels)
    async with serve_app(lambda b: build_targets_app(b, {"c": (counted, False)})) as targets, \
            serve_app(_proctor(tmp_path / "p.db", max_investigations=3)) as proctor:
        req = {"target": f"{targets}/c/.well-known/agent-card.json", "concurrency": 128, "attempts": 2}
        results = await asyncio.gather(call_proctor(proctor, req), call_proctor(proctor, req))
    assert all(r["summary"]["n"] == 2 * n for r in results)
    assert peak == 3, f"peak {peak} investigations in flight, cap 3"


# ----------------------------------------------------------------------------- graceful shutdown

SERVE = """
import sys
from evaluator_agent.service.server import create_app, run_server
db, port, drain = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
run_server(create_app(db, public_url=f"http://127.0.0.1:{port}"), "127.0.0.1", port, drain_s=drain)
"""


@pytest.mark.parametrize("signals", [1, 2], ids=["drain", "second-signal-cancels"])
async def test_sigterm_drains_records_and_marks_the_run_interrupted(tmp_path, signals: int) -> None:
    """One SIGTERM: the investigation in flight finishes during the drain, the hanging one is
    cancelled when the drain time is up. A second SIGTERM cancels at once."""
    release = asyncio.Event()
    briefings: list[str] = []

    async def target(turn: int, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("type") == "briefing":
            briefings.append(msg["investigation_id"])
            if len(briefings) == 3:  # the third investigation hangs past the drain time
                await asyncio.wait_for(release.wait(), 30)
        await asyncio.sleep(0.4)
        return {"diagnosis": {"no_fault": True}}

    db = tmp_path / "s.db"
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    drain_s = 2.0 if signals == 1 else 30.0
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(db), str(port), str(drain_s)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proctor = f"http://127.0.0.1:{port}"
    n = len(load_labelset("smoke").labels)
    try:
        async with serve_app(lambda b: build_targets_app(b, {"t": (target, False)})) as targets, httpx.AsyncClient() as http:
            t0 = time.monotonic()
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    if (await http.get(f"{proctor}/health", timeout=0.5)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() - t0 < 20, "proctor did not start"
                await asyncio.sleep(0.05)

            progress: list[dict[str, Any]] = []
            request = {"target": f"{targets}/t/.well-known/agent-card.json", "run_id": "run_sigterm_1", "concurrency": 2,
                       "budget": {"turn_timeout_s": 30}}
            evaluation = asyncio.create_task(call_proctor(proctor, request, on_progress=progress.append))
            while not (len(briefings) >= 4 and any(p.get("done", 0) >= 2 for p in progress)):
                assert not evaluation.done(), evaluation.exception()
                await asyncio.sleep(0.01)
            assert progress[0]["run_id"] == "run_sigterm_1"
            in_flight = len(briefings)  # the hanging one and one that will finish during the drain
            proc.send_signal(signal.SIGTERM)
            t_term = time.monotonic()

            # While draining: health says so, new evaluations are refused, other actions still work.
            while (await http.get(f"{proctor}/health")).status_code != 503:
                await asyncio.sleep(0.02)
            with pytest.raises(ProctorTaskFailed, match="shutting down"):
                await call_proctor(proctor, request | {"run_id": "run_sigterm_2"})
            assert (await call_proctor(proctor, {"action": "list_labelsets"}))["labelsets"]
            if signals == 2:
                proc.send_signal(signal.SIGTERM)

            with pytest.raises(ProctorTaskFailed) as failed:
                await evaluation
            code = await asyncio.to_thread(proc.wait, 10)
            took = time.monotonic() - t_term
            release.set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code in (0, -signal.SIGTERM), proc.stderr.read().decode()
    if signals == 1:
        assert drain_s <= took < drain_s + 3, f"exit {took:.1f}s after SIGTERM"
    else:
        assert took < 3, f"exit {took:.1f}s after SIGTERM"
    store = Store(db)
    try:
        run = store.get_run("run_sigterm_1")
        recorded = store.investigations("run_sigterm_1")
        assert run["status"] == "interrupted"
        # Every investigation that started finished during the drain, except the hanging one.
        if signals == 1:
            assert len(recorded) == in_flight - 1 < n
        else:  # the one in flight may have finished before the second signal, or been cancelled
            assert in_flight - 2 <= len(recorded) <= in_flight - 1
        msg = str(failed.value)
        assert f"interrupted by shutdown after {len(recorded)}/{n} investigations" in msg
        assert "send the same request with run_id=run_sigterm_1 to finish it" in msg
        assert all(r["end_reason"] and r["score"] is not None for r in recorded)
        # Nothing half-written: no turns or tool calls of an investigation that is not recorded.
        ids = {r["id"] for r in recorded}
        orphans = [row for table in ("turns", "tool_calls") for row in store.db[table].rows
                   if row["investigation_id"] not in ids]
        assert not orphans
        assert store.get_run("run_sigterm_2") is None
    finally:
        store.close()


async def test_drain_without_evaluations_is_immediate(tmp_path) -> None:
    from evaluator_agent.service.server import create_app

    app = create_app(str(tmp_path / "d.db"))
    await asyncio.wait_for(app.state.proctor.life.drain(5.0), 4.0)  # returns at once: it does not wait out the 5 s
    assert app.state.proctor.life.draining
    app.state.store.close()
    await app.state.proctor.work.aclose()


def test_create_app_rejects_bad_limits(tmp_path, monkeypatch) -> None:
    from evaluator_agent.service.server import create_app

    monkeypatch.setenv("PROCTOR_MAX_EVALUATIONS", "zero")
    with pytest.raises(ValueError, match="PROCTOR_MAX_EVALUATIONS"):
        create_app(str(tmp_path / "x.db"))
    monkeypatch.delenv("PROCTOR_MAX_EVALUATIONS")
    with pytest.raises(ValueError):
        create_app(str(tmp_path / "x.db"), max_body_bytes=0)
    assert os.environ.get("PROCTOR_MAX_EVALUATIONS") is None
