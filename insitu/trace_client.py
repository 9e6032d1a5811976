"""Client for the tracer, imported by the other platform services.

    from insitu.trace_client import TracerClient, make_trace, pseudonym
    from insitu.trace import Action

    trace = make_trace(Action.USE_DATASETS, caller="dataset-service",
                       user=pseudonym("alice", key), dataset_ids=["ds-1"],
                       digests={"ds-1": manifest_root}, details={"session_id": sid})
    await TracerClient(base_url, token).send(trace)   # or .send_sync(trace)

``base_url`` is the tracer's root, e.g. ``http://127.0.0.1:8000/services/tracer``
behind the hub proxy or ``http://127.0.0.1:8102/services/tracer`` directly;
``token`` is the calling service's hub API token.

``send`` answers once the tracer has stored the trace durably (202). It is
idempotent on the trace id, so it retries connection failures and 5xx a few
times; it raises ``TraceRejected`` on a 4xx (the trace is wrong or the caller
is not allowed: retrying will not help) and ``TracerUnavailable`` otherwise.
Callers that promise "traced before answering" must fail closed on both.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time as _time
import uuid
from datetime import datetime
from typing import Any, Iterable, Mapping

import httpx

from insitu.clock import utcnow
from insitu.trace import Action, Trace

__all__ = [
    "TraceFailed",
    "Tracing",
    "TracerClient",
    "TracerError",
    "TraceRejected",
    "TracerUnavailable",
    "make_trace",
    "pseudonym",
    "Action",
    "Trace",
]


class TracerError(Exception):
    """Base class of the client's errors."""


class TraceRejected(TracerError):
    """The tracer refused the trace (4xx): bad trace or caller not allowed."""

    def __init__(self, status_code: int, detail: Any):
        super().__init__(f"tracer refused the trace ({status_code}): {detail}")
        self.status_code = status_code
        self.detail = detail


class TracerUnavailable(TracerError):
    """The tracer could not be reached or failed (5xx, timeout, connection)."""


def pseudonym(login: str, key: bytes | str) -> str:
    """The pseudonymous user id of a login name: HMAC-SHA256(key, login), hex.

    The key is held by the platform (never by the tracer or the auditors), so
    a pseudonym cannot be reversed by guessing logins without it. The same
    login always gives the same pseudonym under one key.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise ValueError("pseudonym key must not be empty")
    return hmac.new(key, login.encode("utf-8"), hashlib.sha256).hexdigest()


def make_trace(
    action: Action | str,
    *,
    caller: str,
    user: str | None = None,
    dataset_ids: Iterable[str] = (),
    digests: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
    id: uuid.UUID | str | None = None,
    time: datetime | None = None,
) -> Trace:
    """Build a validated trace; ``user`` must already be a pseudonym.

    Choose ``id`` yourself (e.g. derived from your own record) when you may
    send the same trace again after a failure: the tracer stores it once.
    """
    return Trace(
        id=uuid.UUID(str(id)) if id is not None else uuid.uuid4(),
        time=time or utcnow(),
        caller=caller,
        user=user,
        action=Action(action),
        dataset_ids=list(dataset_ids),
        digests=dict(digests or {}),
        details=dict(details or {}),
    )


def _payload(trace: Trace | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(trace, Trace):
        return trace.canonical_dict()
    return dict(trace)


def _detail(resp: httpx.Response) -> Any:
    try:
        return resp.json().get("detail", resp.text)
    except Exception:
        return resp.text


class TracerClient:
    """Posts traces to the tracer with a service token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, retries: int = 3, backoff: float = 0.2):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def _check(self, resp: httpx.Response) -> dict[str, Any]:
        if 400 <= resp.status_code < 500:
            raise TraceRejected(resp.status_code, _detail(resp))
        if resp.status_code not in (200, 201, 202):
            raise TracerUnavailable(f"tracer answered {resp.status_code}: {_detail(resp)}")
        try:
            return resp.json()
        except ValueError:
            return {}

    def send_sync(self, trace: Trace | Mapping[str, Any]) -> dict[str, Any]:
        """POST the trace, retrying connection failures and 5xx; returns the tracer's answer ({id, seq, status})."""
        body = _payload(trace)
        last: Exception | None = None
        with httpx.Client(timeout=self.timeout) as http:
            for attempt in range(self.retries):
                try:
                    return self._check(http.post(f"{self.base_url}/traces", json=body, headers=self._headers))
                except TraceRejected:
                    raise
                except (httpx.HTTPError, TracerUnavailable) as e:
                    last = e
                    if attempt + 1 < self.retries:
                        _time.sleep(self.backoff * 2**attempt)
        raise TracerUnavailable(str(last)) from last

    async def send(self, trace: Trace | Mapping[str, Any]) -> dict[str, Any]:
        """``send_sync`` (the one implementation, retries included) in a worker thread: the event loop keeps
        running while the tracer answers."""
        return await asyncio.to_thread(self.send_sync, trace)


class TraceFailed(TracerError):
    """The tracer did not accept a trace (down, refused, or not configured): the traced step must not happen."""


class Tracing:
    """The one tracing path of the platform's services (dataset lifecycle, governance, export airlock).

    ``make`` builds a trace (the user enters it only as a pseudonym); ``deliver``
    posts it and raises ``TraceFailed`` unless the tracer stored it. Delivery is
    idempotent: the client's own retries, and any later resend of the *same*
    trace (same id, same time, same content), are stored once by the tracer
    (202 ``duplicate``). A caller that may resend after a crash keeps the trace
    it made at the first attempt (e.g. ``dataset_service.traces.EventJournal``)
    and delivers that one again, never a fresh one with a new time.

    ``send`` = ``make`` with a random id + ``deliver``: for steps recorded inside
    a database transaction, where a failed delivery rolls the step back and a
    reused record id (rollback, another database) must never collide.
    """

    def __init__(self, base_url: str, token: str, pseudonym_key: str, caller: str = "dataset-service",
                 *, timeout: float = 5.0, retries: int = 3):
        self.base_url = base_url
        self.caller = caller
        self.key = pseudonym_key
        self.client = TracerClient(base_url, token, timeout=timeout, retries=retries) if base_url else None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def pseudonym(self, login: str) -> str:
        return pseudonym(login, self.key)

    def make(self, action: Action | str, *, user: str | None, dataset_ids: Iterable[str] = (),
             digests: Mapping[str, str] | None = None, details: Mapping[str, Any] | None = None,
             id: uuid.UUID | str | None = None) -> Trace:
        """A validated trace; ``user`` is a login name (made a pseudonym here); empty digests are left out."""
        try:
            return make_trace(action, caller=self.caller, user=self.pseudonym(user) if user else None,
                              dataset_ids=list(dataset_ids), digests={k: v for k, v in (digests or {}).items() if v},
                              details=dict(details or {}), id=id)
        except ValueError as e:  # refused before sending: a bug, but fail closed all the same
            raise TraceFailed(f"the {Action(action).value} trace is invalid: {e}") from e

    def deliver(self, trace: Trace, what: str = "") -> dict[str, Any]:
        """Post ``trace``; the tracer's answer ({id, seq, status}). Raises ``TraceFailed``."""
        if self.client is None:
            raise TraceFailed("no tracer is configured: traced actions are refused")
        try:
            return self.client.send_sync(trace)
        except TracerError as e:
            raise TraceFailed(f"the tracer did not accept the {trace.action.value} trace {what}: {e}") from e

    def send(self, action: Action, *, user: str | None, key: str, dataset_ids: Iterable[str] = (),
             digests: Mapping[str, str] | None = None, details: Mapping[str, Any] | None = None) -> str:
        """Make and deliver one trace about the record named ``key`` (e.g. ``request:12:1``); its id."""
        trace = self.make(action, user=user, dataset_ids=dataset_ids, digests=digests, details=details)
        self.deliver(trace, f"({key})")
        return str(trace.id)
