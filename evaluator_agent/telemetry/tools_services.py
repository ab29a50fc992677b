"""The topology tools: ``list_services`` (the catalog) and ``get_service_dependencies``."""

from __future__ import annotations

import difflib
from typing import Any

from evaluator_agent.telemetry.search_parser import parse_search_query
from evaluator_agent.telemetry.search_query import compile_predicate
from evaluator_agent.telemetry.tools_base import ToolBase, ToolError, clip

__all__ = ["ServiceTools"]


class ServiceTools(ToolBase):
    """``list_services`` and ``get_service_dependencies``."""

    _SERVICE_KEYS = ("name", "kind", "team", "platform", "cluster", "tier", "language", "description")

    def _list_services(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args.get("query") or ""
        node = parse_search_query(q)
        aliases = {"service": "name", "owner": "team"}

        def get(s: dict[str, Any], key: str, attr: bool) -> Any:
            return s.get(aliases.get(key, key))

        pred = compile_predicate(node, get, lambda s: s["name"].lower())
        matching = [s for s in self.index.services if pred(s)]
        limit, fp, offset = self._page_start(args, "list_services", q.strip())
        items = [
            {k: clip(s.get(k, 2 if k == "tier" else "")) for k in self._SERVICE_KEYS}
            for s in matching[offset : offset + limit]
        ]
        content: dict[str, Any] = {"services": items, "total": len(matching)}
        return self._page_end(content, "services", fp, offset, len(matching))

    def _get_service_dependencies(self, args: dict[str, Any]) -> dict[str, Any]:
        service = self._service_known(args["service"])
        direction = args.get("direction", "both")
        depth = int(args.get("depth", 1))

        def walk(adj: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
            seen = {service}
            frontier = [service]
            out: list[dict[str, Any]] = []
            for d in range(1, depth + 1):
                nxt: list[str] = []
                for s in frontier:
                    for target, proto in adj.get(s, ()):
                        if target not in seen:
                            seen.add(target)
                            out.append({"service": target, "protocol": proto, "depth": d})
                            nxt.append(target)
                frontier = nxt
            return out

        idx = self.index
        return {
            "service": service,
            "downstream": walk(idx.downstream) if direction in ("downstream", "both") else [],
            "upstream": walk(idx.upstream) if direction in ("upstream", "both") else [],
        }

    def _service_known(self, name: str) -> str:
        idx = self.index
        if idx.known_entity(name):
            return name
        for cand in (*idx.service_by_name, *idx.downstream, *idx.upstream):
            if cand.lower() == name.lower():
                return cand
        names = sorted({*idx.service_by_name, *idx.downstream, *idx.upstream})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; list_services shows the catalog"
        raise ToolError(f"unknown service {name!r}{hint}")
