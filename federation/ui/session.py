"""Browser sessions of the UI: a token exchanged for an encrypted, expiring cookie, and the
CSRF token every state-changing request must carry.

The cookie is a Fernet token (AES-CBC + HMAC-SHA256, with its issue time) under a key derived
from the cluster secret, so any server of the cluster accepts a session another one issued,
and the API token inside it is neither readable nor forgeable by the browser. The token is
kept (not a "signed in" flag) so every request re-checks it: a token revoked after sign-in
stops working at once. Pure functions of their inputs; no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "federation_session"
LOGIN_COOKIE = "federation_login"
SESSION_TTL_SECONDS = 8 * 3600
LOGIN_TTL_SECONDS = 15 * 60
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    token: str | None  # the API token signed in with (None on a server without one)
    csrf: str
    issued_at: int


class SessionCodec:
    """Seals and opens session and sign-in cookies with a key derived from the secret."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"federation-ui-session:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def issue(self, token: str | None, now: int) -> tuple[str, Session]:
        session = Session(token=token, csrf=secrets.token_urlsafe(32), issued_at=now)
        payload = json.dumps({"t": token, "c": session.csrf}).encode()
        return self._fernet.encrypt_at_time(payload, now).decode(), session

    def open(self, cookie: str | None, now: int) -> Session | None:
        """The session in a cookie, or None if absent, tampered with or expired."""
        if not cookie:
            return None
        try:
            raw = self._fernet.decrypt_at_time(cookie.encode(), SESSION_TTL_SECONDS, now)
            data = json.loads(raw)
            issued = self._fernet.extract_timestamp(cookie.encode())
        except (InvalidToken, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        token = data.get("t")
        return Session(token=token if isinstance(token, str) else None, csrf=data["c"],
                       issued_at=issued)

    def login_nonce(self, now: int) -> tuple[str, str]:
        """A nonce for the sign-in form and the cookie that vouches for it (double submit:
        a cross-site form cannot read the cookie, so cannot sign a victim in as the
        attacker)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._fernet.encrypt_at_time(nonce.encode(), now).decode()

    def check_login_nonce(self, cookie: str | None, nonce: str | None, now: int) -> bool:
        if not cookie or not nonce:
            return False
        try:
            expected = self._fernet.decrypt_at_time(cookie.encode(), LOGIN_TTL_SECONDS, now)
        except InvalidToken:
            return False
        return hmac.compare_digest(expected, nonce.encode())


def csrf_ok(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(),
                                                   str(presented).encode())
