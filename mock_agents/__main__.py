"""``python -m mock_agents``: serve the mock SRE agents over A2A.

python -m mock_agents serve [--host 127.0.0.1] [--port 9100] [--agents a,b] [--base-url URL]
python -m mock_agents list

The load generator that used to live here is ``proctor traffic``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mock_agents", description="Mock SRE agents for incident-proctor, over A2A."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve the agents on one HTTP server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    s.add_argument("--agents", default="", help="comma-separated agent names (default: all)")
    s.add_argument(
        "--base-url",
        default=None,
        help="public base URL advertised in the cards (default http://HOST:PORT)",
    )
    s.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )

    sub.add_parser("list", help="list the agents this process can serve")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        from .agents import agent_names, build_agent

        for name in agent_names():
            try:
                description = build_agent(name).description
            except (RuntimeError, ValueError) as e:
                description = f"(unavailable: {e})"
            print(f"{name:16s} {description}")
        return 0
    if args.command == "serve":
        from .server import serve

        agents = [a.strip() for a in args.agents.split(",") if a.strip()] or None
        try:
            asyncio.run(
                serve(
                    args.host, args.port, agents, base_url=args.base_url, log_level=args.log_level
                )
            )
        except KeyboardInterrupt:
            pass
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
