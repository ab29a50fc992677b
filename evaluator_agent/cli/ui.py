"""``proctor ui``: the web interface on a local results database, without the A2A server.

    proctor ui --db proctor.db [--queue label-queue.db] [--port 8081] [--host 127.0.0.1]

The same pages ``proctor serve`` mounts at ``/ui`` (``evaluator_agent/web``). It listens on
loopback by default and is open (no sign-in) unless ``--api-keys`` or ``$PROCTOR_API_KEYS``
names keys; then it asks for one, like the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evaluator_agent.cli.common import EXIT_OK, EXIT_USAGE, default_db


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=default_db(), help="results database (default $PROCTOR_DB or proctor.db)")
    p.add_argument("--queue", default=os.environ.get("PROCTOR_LABEL_QUEUE") or None, metavar="QUEUE.db",
                   help="the label review queue to show (default $PROCTOR_LABEL_QUEUE)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--api-keys", default=None, help="comma-separated keys that may sign in (default $PROCTOR_API_KEYS; "
                   "none: open)")
    p.add_argument("--disclosure", choices=["full", "scores"], default="full",
                   help="what results reveal (default full: a local database is the operator's own)")


def cmd_ui(a: argparse.Namespace) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route

    from evaluator_agent.web.app import UI_PATH, UIConfig, ui_app

    if not Path(a.db).is_file():
        print(f"proctor ui: {a.db}: no such results database (run proctor demo or proctor run first)", file=sys.stderr)
        return EXIT_USAGE
    keys = a.api_keys if a.api_keys is not None else os.environ.get("PROCTOR_API_KEYS", "")
    config = UIConfig(disclosure=a.disclosure, queue=Path(a.queue) if a.queue else None)
    ui = ui_app(a.db, api_keys=keys.split(","), config=config)

    async def home(_: object) -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/")

    app = Starlette(routes=[Route("/", home), Mount(UI_PATH, app=ui)])
    print(f"proctor ui: http://{a.host}:{a.port}{UI_PATH}/ ({a.db})", file=sys.stderr)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return EXIT_OK
