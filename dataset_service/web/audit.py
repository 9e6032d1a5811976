"""The auditor's name → pseudonym lookup: "what did this person do?".

Traces carry pseudonyms (HMAC of the login under a key the platform holds, never
the tracer or the auditors), so an auditor who must answer for one person asks
this service, which holds the key:

| route | what |
|---|---|
| ``GET /audit/people`` | the form (auditors only) |
| ``POST /audit/people`` | login name + the reason for asking → the pseudonym and a link to that person's traces |
| ``POST /api/audit/pseudonyms`` | the same for scripts: ``{"login", "reason"}`` → ``{"login", "pseudonym", "trace_id"}`` |

Every lookup is itself traced (LOOKUP_PSEUDONYM: the auditor's pseudonym, the
pseudonym looked up, the SHA-256 of the reason; no name, no free text) before
the answer is given: when the tracer does not take the trace, there is no answer.
"""
from __future__ import annotations

import hashlib
import re

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from insitu.httpapi import unprocessable
from insitu.identity import Identity, require_roles
from insitu.names import SERVICE_TRACER
from insitu.trace import Action

from ..governance.deps import get_governance
from ..governance.service import Governance
from ..governance.tracing import TraceFailed
from .deps import AuditorForm, AuditorPage, error_page, render

router = APIRouter()
LOGIN_RE = re.compile(r"^[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]{0,127}$")


class LookupError_(ValueError):
    pass


def _check(login: str, reason: str) -> tuple[str, str]:
    login, reason = login.strip(), reason.strip()
    if not LOGIN_RE.match(login):
        raise LookupError_("a login name is 1 to 128 printable characters")
    if not 10 <= len(reason) <= 500:
        raise LookupError_("say why you look this person up (10 to 500 characters): the reason's digest is "
                           "recorded on the audit trail")
    return login, reason


def lookup(gov: Governance, auditor: str, login: str, reason: str) -> tuple[str, str]:
    """(pseudonym, trace id); raises ``TraceFailed`` when the lookup could not be traced."""
    p = gov.tracing.pseudonym(login)
    tid = gov.tracing.send(Action.LOOKUP_PSEUDONYM, user=auditor, key="lookup",
                           details={"looked_up": p,
                                    "reason_sha256": hashlib.sha256(reason.encode("utf-8")).hexdigest()})
    return p, tid


def tracer_link(pseudonym: str) -> str:
    return f"/services/{SERVICE_TRACER}/?user={pseudonym}"


@router.get("/audit/people", include_in_schema=False)
def people_page(request: Request, who: AuditorPage):
    return render(request, who, "audit_people.html", result=None, error=None, login="", reason="")


@router.post("/audit/people", include_in_schema=False)
def people_lookup(request: Request, who: AuditorForm, gov: Governance = Depends(get_governance),
                  login: str = Form("", max_length=4000), reason: str = Form("", max_length=4000)):
    try:
        login, reason = _check(login, reason)
    except LookupError_ as e:  # shown in the form, which keeps what was typed
        return render(request, who, "audit_people.html", status=422, result=None, error=str(e),
                      login=login[:128], reason=reason[:500])
    try:
        p, tid = lookup(gov, who.name, login, reason)
    except TraceFailed:
        return error_page(request, who, 503, "Please try again later",
                          "The lookup could not be recorded in the audit trail, so no answer is given.")
    return render(request, who, "audit_people.html", result={"login": login, "pseudonym": p, "trace_id": tid,
                                                              "link": tracer_link(p)},
                  error=None, login="", reason="")


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: str = Field(min_length=1, max_length=128, pattern=LOGIN_RE.pattern)
    reason: str = Field(min_length=10, max_length=500, pattern=r"\S[\s\S]{8,}\S",
                        description="why: 10 to 500 characters besides surrounding spaces")


@router.post("/api/audit/pseudonyms", tags=["audit"])
def api_lookup(body: LookupIn, who: Identity = Depends(require_roles("auditors")),
               gov: Governance = Depends(get_governance)):
    """An auditor's lookup of one login's pseudonym; traced (LOOKUP_PSEUDONYM) before the answer."""
    try:
        login, reason = _check(body.login, body.reason)
    except LookupError_ as e:
        raise unprocessable(str(e)) from None
    try:
        p, tid = lookup(gov, who.name, login, reason)
    except TraceFailed:
        raise HTTPException(503, "the lookup could not be recorded in the audit trail")
    return {"login": login, "pseudonym": p, "trace_id": tid}
