"""The web interface: an ASGI app mounted at ``/ui`` by ``proctor serve``, or served alone by
``proctor ui --db FILE``.

Pages are server-rendered (Jinja2 templates in ``templates/``, a stylesheet and one small
script in ``static/``; no build step). Each page module of ``pages/`` contributes routes through
``routes(ui)``; a page handler is a plain function ``(ui, request, viewer) -> Response`` wrapped
by :meth:`UI.page`, which signs the viewer in (``session.py``), turns :class:`NotFound` and
:class:`BadRequest` into their pages, and adds the security headers. Handlers are synchronous:
Starlette runs them in its thread pool, so SQLite reads never block the event loop.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evaluator_agent.results.store import Store
from evaluator_agent.web.render import STATIC, environment
from evaluator_agent.web.session import COOKIE, SESSION_S, Sessions, Viewer, security_headers

log = logging.getLogger(__name__)

QUEUE_ENV = "PROCTOR_LABEL_QUEUE"
UI_PATH = "/ui"  # where proctor serve mounts it


class NotFound(Exception):
    """A page or a record that does not exist, or that the viewer may not see (same answer)."""


class BadRequest(Exception):
    """A malformed query parameter or form field."""


@dataclass
class UIConfig:
    """What the interface shows: the results database, the label sets, the review queue."""

    disclosure: str = "scores"  # what results reveal (results/disclosure.py)
    labelsets_root: Path | None = None
    snapshots: Path | None = None
    queue: Path | None = None  # the label review queue (None: $PROCTOR_LABEL_QUEUE if it exists)
    https: bool | None = None  # Secure cookies (None: when the request came over https)
    extra: dict[str, Any] = field(default_factory=dict)

    def queue_path(self) -> Path | None:
        q = self.queue or (Path(os.environ[QUEUE_ENV]) if os.environ.get(QUEUE_ENV) else None)
        return q if q is not None and q.is_file() else None


class UI:
    """The interface's shared state: the store, sessions, templates, configuration."""

    def __init__(self, store: Store, sessions: Sessions, config: UIConfig):
        self.store = store
        self.sessions = sessions
        self.config = config
        self.env = environment()

    # ------------------------------------------------------------------ responses

    def render(self, request: Request, template: str, viewer: Viewer | None, status_code: int = 200,
               **ctx: Any) -> Response:
        base = request.scope.get("root_path", "")
        html = self.env.get_template(template).render(
            base=base, viewer=viewer, open=self.sessions.open, csrf=self.sessions.csrf(viewer) if viewer else "",
            review=self.config.queue_path() is not None, path=request.url.path, params=dict(request.query_params),
            **ctx)
        return HTMLResponse(html, status_code=status_code, headers=security_headers())

    def redirect(self, request: Request, to: str, status: int = 303) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + to, status_code=status, headers=security_headers())

    def page(self, fn: Callable[..., Any]) -> Callable[[Request], Any]:
        """A page handler with sign-in, not-found and bad-request pages. ``fn(ui, request, viewer)``
        is a plain function (run in the thread pool) or a coroutine function (for forms: it
        must run its SQLite work with ``run_in_threadpool``)."""

        def signed_in(request: Request) -> Viewer | Response:
            viewer = self.sessions.viewer(request.cookies.get(COOKIE))
            if viewer is None:
                if request.method != "GET":
                    return self.render(request, "error.html", None, 403, title="Signed out",
                                       message="Your session has ended: sign in again.")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return self.redirect(request, f"/signin?next={quote(target, safe='')}")
            return viewer

        def failed(request: Request, viewer: Viewer, e: Exception) -> Response:
            if isinstance(e, NotFound):
                return self.render(request, "error.html", viewer, 404, title="Not found",
                                   message=str(e) or "There is nothing here.")
            status = 403 if isinstance(e, Forbidden) else 400
            return self.render(request, "error.html", viewer, status, title="Refused" if status == 403 else "Bad request",
                               message=str(e))

        if inspect.iscoroutinefunction(fn):
            async def async_handler(request: Request) -> Response:
                viewer = signed_in(request)
                if not isinstance(viewer, Viewer):
                    return viewer
                try:
                    return await fn(self, request, viewer)
                except (NotFound, BadRequest) as e:
                    return failed(request, viewer, e)

            return async_handler

        def handler(request: Request) -> Response:
            viewer = signed_in(request)
            if not isinstance(viewer, Viewer):
                return viewer
            try:
                return fn(self, request, viewer)
            except (NotFound, BadRequest) as e:
                return failed(request, viewer, e)

        return handler

    def run_for(self, viewer: Viewer, run_id: str) -> dict[str, Any]:
        """A stored run the viewer may see (exact id or unique prefix), else NotFound: another
        principal's run is exactly as absent as one that does not exist."""
        run = self.store.find_run(run_id) if 0 < len(run_id) <= 64 else None
        if run is None or not viewer.sees(run):
            raise NotFound(f"no run {run_id[:64]!r}")
        return run

    def csrf_checked(self, request: Request, viewer: Viewer, form: Any) -> None:
        if not self.sessions.csrf_ok(viewer, form.get("csrf")):
            raise Forbidden("the form has expired or did not come from this page: reload it and try again")


class Forbidden(BadRequest):
    pass


# ---------------------------------------------------------------------- sign-in


def _safe_next(value: str | None, root: str) -> str:
    """Where to go after signing in: a path of this interface only (no open redirect)."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    path = value[len(root):] if root and value.startswith(root) else value
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _signin_routes(ui: UI) -> list[Route]:
    async def signin(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        nxt = _safe_next(request.query_params.get("next"), root)
        if ui.sessions.open:
            return ui.redirect(request, nxt)
        if request.method == "GET":
            return ui.render(request, "signin.html", None, title="Sign in", next=nxt, error=None)
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        key = str(form.get("key") or "")
        nxt = _safe_next(str(form.get("next") or ""), root)
        cookie = ui.sessions.sign_in(key) if 0 < len(key) <= 512 else None
        if cookie is None:
            return ui.render(request, "signin.html", None, 401, title="Sign in", next=nxt,
                             error="That key is not valid here.")
        resp = ui.redirect(request, nxt)
        secure = ui.config.https if ui.config.https is not None else request.url.scheme == "https"
        resp.set_cookie(COOKIE, cookie, max_age=SESSION_S, httponly=True, samesite="strict", secure=secure,
                        path=root or "/")
        return resp

    async def signout(request: Request) -> Response:
        resp = ui.redirect(request, "/signin")
        resp.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/")
        return resp

    return [Route("/signin", signin, methods=["GET", "POST"]), Route("/signout", signout, methods=["POST"])]


class _Headers:
    """Security headers on every answer of the interface (static files and errors included)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(k.encode(), v.encode()) for k, v in security_headers().items() if k != "cache-control"]

        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *(h for h in extra if h[0] not in have)]}
            await send(message)

        await self.app(scope, receive, wrapped)


def ui_app(store: Store | str | Path, *, api_keys: Any = (), secret: str | bytes | None = None,
           config: UIConfig | None = None) -> Any:
    """The interface as an ASGI app (mount it at ``/ui``)."""
    from evaluator_agent.results.browse import ensure_indexes
    from evaluator_agent.web.pages import page_routes

    if not isinstance(store, Store):
        store = Store(store)
    ensure_indexes(store)  # the run page's covering index (results/browse.py)
    ui = UI(store, Sessions(api_keys, secret), config or UIConfig())
    routes = [*_signin_routes(ui), *page_routes(ui), Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static")]

    async def not_found(request: Request, exc: Exception) -> Response:
        viewer = ui.sessions.viewer(request.cookies.get(COOKIE))
        return ui.render(request, "error.html", viewer, 404, title="Not found", message="There is no such page.")

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.ui = ui
    return _Headers(app)
