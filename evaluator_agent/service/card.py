"""The proctor's agent card: its skills, interfaces and security, served for A2A 1.x and 0.3 clients."""

from __future__ import annotations

import json
from typing import Any

from evaluator_agent import __version__

REST_PREFIX = "/v1"
BEARER_SCHEME = "bearer"
# a skill id of the card -> the action it is (the short names are the documented actions)
SKILL_ACTIONS = {"evaluate_agent": "evaluate", "compare_runs": "compare"}


def build_card(public_url: str, *, bearer: bool = False) -> Any:
    """The agent card; ``bearer=True`` advertises that the A2A routes need an HTTP bearer token."""
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    base = public_url.rstrip("/")
    security: dict[str, Any] = {}
    if bearer:
        security = {
            "security_schemes": {BEARER_SCHEME: SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer", description="API key issued by the proctor's operator: 'Authorization: Bearer <key>'"))},
            "security_requirements": [SecurityRequirement(schemes={BEARER_SCHEME: StringList()})],
        }
    example = json.dumps({"target": "http://127.0.0.1:9100/methodical/.well-known/agent-card.json", "labelset": "smoke"})
    return AgentCard(
        name="incident-proctor",
        description="Evaluates autonomous SRE agents: replays production incidents to the agent under test over A2A, "
        "serves simulated telemetry tools, scores the investigation against hidden ground truth.",
        version=__version__,
        supported_interfaces=[
            AgentInterface(url=base + "/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=base + REST_PREFIX, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(
                id="evaluate_agent", name="Evaluate an SRE agent",
                description="Run the agent behind an agent card URL through a label set of replayed incidents; "
                "streams progress and returns a scored result artifact. Each investigation's tools are served in-band, over MCP "
                "with Datadog's MCP tool names (<url>/mcp) and as a Datadog REST API facade (<url>/datadog), so agents "
                "built for Datadog are evaluated unchanged; the request's 'surfaces' restricts them.",
                tags=["evaluation", "sre", "incident", "benchmark"],
                examples=[example, json.dumps({"participants": {"target": "<agent card URL>"}, "config": {"labelset": "smoke"}})],
                input_modes=["application/json", "text/plain"], output_modes=["application/json", "text/plain"],
            ),
            AgentSkill(
                id="list_labelsets", name="List label sets",
                description="Label sets this proctor can evaluate against, with label counts and content hashes.",
                tags=["labels"], examples=[json.dumps({"action": "list_labelsets"})],
            ),
            AgentSkill(
                id="compare_runs", name="Compare two runs",
                description="Paired comparison of two stored runs on their shared labels: delta with 95% CI, exact McNemar "
                "test, verdict regression | improvement | inconclusive, flipped labels, regressed segments.",
                tags=["results", "regression"],
                examples=[json.dumps({"action": "compare", "base": "run_0123456789ab", "new": "run_ba9876543210"})],
            ),
            AgentSkill(
                id="get_run", name="Get a run",
                description="The stored result of an earlier evaluation run, by run id.",
                tags=["results"], examples=[json.dumps({"action": "get_run", "run_id": "run_0123456789ab"})],
            ),
        ],
        **security,
    )


_V03_SCHEME_TYPES = {
    "httpAuthSecurityScheme": "http", "apiKeySecurityScheme": "apiKey", "oauth2SecurityScheme": "oauth2",
    "openIdConnectSecurityScheme": "openIdConnect", "mtlsSecurityScheme": "mutualTLS",
}  # fmt: skip


def card_json(card: Any) -> dict[str, Any]:
    """The agent card as served: the A2A 1.x card, plus the fields an A2A 0.3 client reads
    (top-level ``url``, ``protocolVersion``, ``preferredTransport``, ``additionalInterfaces``,
    ``security``, and each security scheme's 0.3 fields beside its 1.x wrapper). 1.x clients
    ignore the additions, so one card serves both."""
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    d = agent_card_to_dict(card)
    ifaces = d.get("supportedInterfaces") or []
    main = next((i for i in ifaces if i.get("protocolBinding") == "JSONRPC"), ifaces[0] if ifaces else None)
    if main is not None:
        d["url"] = main["url"]
        d["preferredTransport"] = main.get("protocolBinding", "JSONRPC")
        d["protocolVersion"] = "0.3.0"
        d["additionalInterfaces"] = [{"url": i["url"], "transport": i.get("protocolBinding")} for i in ifaces]
    schemes = d.get("securitySchemes") or {}
    for name, scheme in list(schemes.items()):
        kind, body = next(iter(scheme.items()), (None, None))
        if kind in _V03_SCHEME_TYPES and isinstance(body, dict):
            # both shapes side by side: 1.x clients read the wrapper, 0.3 clients the flat fields
            schemes[name] = {**scheme, "type": _V03_SCHEME_TYPES[kind], **body}
    reqs = d.get("securityRequirements") or []
    if reqs:
        d["security"] = [{n: list((v or {}).get("list", [])) for n, v in (r.get("schemes") or {}).items()} for r in reqs]
    return d
