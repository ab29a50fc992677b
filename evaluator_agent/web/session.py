"""Who is looking: sign-in with an API key, a signed session cookie, CSRF tokens, headers.

Access follows the API keys of the A2A endpoint (``PROCTOR_API_KEYS``). Signing in posts a key;
when it is one of the keys, the browser gets a cookie that names the key's *principal*
(``guard.principal_of``: a hash, never the key) and an expiry, signed with HMAC-SHA256 under the
UI's secret (``PROCTOR_UI_SECRET``, else random per process: sessions end with the process).
The cookie is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` when the UI is served over https.
Tenancy: a run belongs to the principal that asked for it (``manifest.owner``); a signed-in
principal sees its own runs and the runs nobody owns (CLI runs, jobs); another principal's run is
not found. Without API keys (``proctor ui`` on a local database) there is no sign-in and every
run is visible.

Every form that changes something carries a CSRF token: an HMAC of the session under the same
secret; a POST without the right token is refused (403), whatever its cookie.

:func:`security_headers` are sent with every answer: a strict Content-Security-Policy (scripts
and styles only from ``/ui/static``, no inline script, no inline style; SVG is drawn with
presentation attributes), no framing, no sniffing, no referrer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

COOKIE = "proctor_ui"
SECRET_ENV = "PROCTOR_UI_SECRET"
SESSION_S = 12 * 3600

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")


def security_headers() -> dict[str, str]:
    return {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        "cross-origin-opener-policy": "same-origin",
    }


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass(frozen=True)
class Viewer:
    """The signed-in principal (None: an open UI, no keys configured)."""

    principal: str | None
    session: str = ""  # the cookie's value, for CSRF tokens

    def sees(self, run: dict[str, Any] | None) -> bool:
        """Tenancy: a run is visible to its owner, and runs nobody owns to everyone."""
        if run is None:
            return False
        owner = (run.get("manifest") or {}).get("owner")
        return owner is None or self.principal is None or owner == self.principal


class Sessions:
    """Keys, secret and the cookie format."""

    def __init__(self, api_keys: Iterable[str] = (), secret: str | bytes | None = None):
        from evaluator_agent.core.keys import parse_api_keys, principal_of

        self.keys = {k: principal_of(k) for k in parse_api_keys(tuple(api_keys))}
        raw = secret if secret is not None else os.environ.get(SECRET_ENV) or secrets.token_bytes(32)
        self.secret = raw.encode() if isinstance(raw, str) else raw

    @property
    def open(self) -> bool:
        return not self.keys

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.secret, payload, hashlib.sha256).digest())

    def sign_in(self, key: str) -> str | None:
        """The cookie value for a valid key (compared in constant time with every key), else None."""
        found = None
        for k, principal in self.keys.items():
            if hmac.compare_digest(key.encode(), k.encode()) and found is None:
                found = principal
        if found is None:
            return None
        payload = json.dumps({"p": found, "exp": int(time.time()) + SESSION_S, "n": secrets.token_hex(8)},
                             separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def viewer(self, cookie: str | None) -> Viewer | None:
        """The viewer of a request: None when a sign-in is needed (no or a bad cookie)."""
        if self.open:
            return Viewer(None, "open")
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        body, sig = cookie.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("p") not in self.keys.values() or int(data.get("exp", 0)) < time.time():
            return None
        return Viewer(str(data["p"]), cookie)

    def csrf(self, viewer: Viewer) -> str:
        return self._sign(b"csrf|" + viewer.session.encode())

    def csrf_ok(self, viewer: Viewer, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(viewer))
