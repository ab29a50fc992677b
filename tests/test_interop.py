"""Interop details for clients of the proctor (issue 11): a card 0.3 clients can read, 0.3 on
REST as on JSON-RPC, the result artifact marked as the last chunk, and a greeting answered."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client.card_resolver import parse_agent_card

from tests.conftest import serve_app

A2A = {"A2A-Version": "1.0", "Content-Type": "application/json"}
LIST = json.dumps({"action": "list_labelsets"})


def _proctor(db: Path, **kw: Any):
    from evaluator_agent.service.server import create_app

    return lambda base: create_app(str(db), public_url=base, **kw)


def _msg(text: str) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}


@pytest.mark.anyio
@pytest.mark.parametrize("keys", [[], ["k1"]], ids=["open", "with-keys"])
async def test_one_card_for_1x_and_03_clients(tmp_path: Path, keys: list[str]) -> None:
    async with serve_app(_proctor(tmp_path / "p.db", api_keys=keys)) as proctor, httpx.AsyncClient() as http:
        card = (await http.get(proctor + "/.well-known/agent-card.json")).json()
    # what a 0.3 client reads
    assert card["url"] == proctor + "/" and card["protocolVersion"].startswith("0.3")
    assert card["preferredTransport"] == "JSONRPC"
    assert {"url": proctor + "/v1", "transport": "HTTP+JSON"} in card["additionalInterfaces"]
    for key in ("name", "description", "version", "capabilities", "defaultInputModes", "defaultOutputModes", "skills"):
        assert card[key], key
    if keys:
        assert card["security"] == [{"bearer": []}]
        bearer = card["securitySchemes"]["bearer"]
        assert bearer["type"] == "http" and bearer["scheme"] == "Bearer"  # 0.3
        assert bearer["httpAuthSecurityScheme"]["scheme"] == "Bearer"  # 1.x
    # what a 1.x client reads: its interfaces, unchanged, and the security scheme mapped back
    parsed = parse_agent_card(json.loads(json.dumps(card)))
    assert [i.protocol_version for i in parsed.supported_interfaces] == ["1.0", "1.0"]
    assert bool(parsed.security_schemes) == bool(keys)
    if keys:
        assert parsed.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"


@pytest.mark.anyio
async def test_03_on_jsonrpc_and_rest(tmp_path: Path) -> None:
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "message/send",
               "params": {"message": {"messageId": "m1", "role": "user", "kind": "message",
                                      "parts": [{"kind": "text", "text": LIST}]}}}  # fmt: skip
        r = (await http.post(proctor + "/", json=rpc)).json()
        assert r["result"]["status"]["state"] == "completed", r
        # a 0.3 REST client appends its paths to the card's HTTP+JSON interface URL
        body = {"message": {"messageId": "m2", "role": "ROLE_USER", "content": [{"text": LIST}]}}
        r = await http.post(proctor + "/v1/v1/message:send", json=body)
        assert r.status_code == 200 and r.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED", r.text


@pytest.mark.anyio
async def test_streamed_result_is_the_last_chunk_and_a_greeting_gets_usage(tmp_path: Path) -> None:
    async with serve_app(_proctor(tmp_path / "p.db")) as proctor, httpx.AsyncClient() as http:
        req = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": _msg(LIST)}}
        events = []
        async with http.stream("POST", proctor + "/", json=req, headers=A2A) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:])["result"])
        updates = [e["artifactUpdate"] for e in events if "artifactUpdate" in e]
        assert updates and updates[-1]["artifact"]["name"] == "labelsets" and updates[-1]["lastChunk"] is True

        req = {"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": _msg("Hello! What can you do?")}}
        task = (await http.post(proctor + "/", json=req, headers=A2A)).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        text = task["artifacts"][0]["parts"][0]["text"]
        assert "incident-proctor" in text and '"target"' in text and "list_labelsets" in text
        # a broken attempt at JSON is still told what is wrong, as a failure
        req = {"jsonrpc": "2.0", "id": 3, "method": "SendMessage", "params": {"message": _msg('{"target": ')}}
        task = (await http.post(proctor + "/", json=req, headers=A2A)).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_FAILED"
