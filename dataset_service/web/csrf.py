"""CSRF protection of the web pages' forms.

The token of a form is ``HMAC-SHA256(key, "csrf|" + sha256(login cookie))``:
bound to the browser's login (another user's or an old login's token does not
fit), never stored, and only obtainable by a page that could read this
service's HTML. Every POST from a page must carry it as ``csrf_token``;
otherwise 403 and nothing happens. The key comes from
``GovernanceSettings.csrf_secret`` or, when empty, from the service's own hub
token (stable across restarts and replicas), or else a random per-process key.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

_fallback = secrets.token_bytes(32)


def csrf_key(secret: str, hub_token: str) -> bytes:
    if secret:
        return hashlib.sha256(b"insitu-csrf|" + secret.encode()).digest()
    if hub_token:
        return hashlib.sha256(b"insitu-csrf-from-hub-token|" + hub_token.encode()).digest()
    return _fallback


def make_token(key: bytes, login_cookie: str) -> str:
    binding = hashlib.sha256(login_cookie.encode()).hexdigest()
    return hmac.new(key, f"csrf|{binding}".encode(), hashlib.sha256).hexdigest()


def check_token(key: bytes, login_cookie: str, presented: str | None) -> bool:
    if not login_cookie or not presented:
        return False
    return hmac.compare_digest(make_token(key, login_cookie), presented)
