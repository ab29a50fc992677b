"""The SSRF guard's address policy and pinning (issue 11, item 6)."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

from evaluator_agent.engine.egress import EgressRefused, pin, resolve_checked, verdict

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]
PRIVATE = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1", "100.127.255.254",
           "198.18.0.1", "192.0.2.10", "198.51.100.7", "203.0.113.9", "192.0.0.8", "::1",
           "fc00::1", "fd12:3456::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1",
           "2002:0a00:0001::1", "2001:db8::1"]  # fmt: skip
ALWAYS = ["169.254.169.254", "fe80::1", "224.0.0.1", "0.0.0.0", "::", "240.0.0.1",
          "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"]  # fmt: skip


@pytest.mark.parametrize("addr", PUBLIC)
def test_public_addresses_pass(addr: str) -> None:
    assert verdict(ipaddress.ip_address(addr), allow_private=False) is None


@pytest.mark.parametrize("addr", PRIVATE)
def test_special_purpose_addresses_are_refused_with_private_targets_off(addr: str) -> None:
    ip = ipaddress.ip_address(addr)
    assert verdict(ip, allow_private=False)
    assert verdict(ip, allow_private=True) is None  # a laptop evaluates agents on these


@pytest.mark.parametrize("addr", ALWAYS)
def test_metadata_link_local_and_reserved_are_always_refused(addr: str) -> None:
    assert verdict(ipaddress.ip_address(addr), allow_private=True)


@pytest.mark.anyio
async def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    assert str(await resolve_checked("127.0.0.1", 80, allow_private=True)) == "127.0.0.1"
    with pytest.raises(EgressRefused):
        await resolve_checked("localhost", 80, allow_private=False)
    with pytest.raises(EgressRefused):
        await resolve_checked("[::ffff:169.254.169.254]", 80, allow_private=True)


def test_pin_keeps_the_name_for_host_and_sni() -> None:
    req = httpx.Request("GET", "https://agent.example.com:8443/.well-known/agent-card.json")
    pin(req, ipaddress.ip_address("203.0.113.5"))
    assert req.url.host == "203.0.113.5" and req.url.port == 8443
    assert req.headers["Host"] == "agent.example.com:8443"
    assert req.extensions["sni_hostname"] == "agent.example.com"
    lit = httpx.Request("GET", "http://127.0.0.1:9/x")
    assert pin(lit, ipaddress.ip_address("127.0.0.1")).url.host == "127.0.0.1"


@pytest.mark.anyio
async def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers a loopback address to the check, then the metadata
    address; the request still goes to the checked one, with its Host header, and a fresh
    resolution that changes is checked again (and refused)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import evaluator_agent.engine.egress as egress
    from evaluator_agent.engine.conversation import TargetBlocked
    from evaluator_agent.engine.transport import make_http_client
    from tests.conftest import serve_app

    answers = [[ipaddress.ip_address("127.0.0.1")], [ipaddress.ip_address("169.254.169.254")]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[Any]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    monkeypatch.setattr(egress, "_resolve", rebinding)

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.headers.get("host")})

    async with serve_app(lambda base: Starlette(routes=[Route("/x", echo)])) as base:
        port = httpx.URL(base).port
        async with make_http_client(allow_private=True) as http:
            for _ in range(2):
                r = await http.get(f"http://rebind.test:{port}/x")
                assert r.json() == {"host": f"rebind.test:{port}"}
            assert asked == ["rebind.test"]  # resolved once; both requests went to 127.0.0.1
            http._transport._checked.clear()  # the cached resolution expires
            with pytest.raises(TargetBlocked, match="169.254.169.254"):
                await http.get(f"http://rebind.test:{port}/x")
