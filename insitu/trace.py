"""The trace: what the tracer accepts, stores, hashes and anchors.

A trace records one action on data. It carries ids, digests and times, never
personal or patient data: the user is a pseudonym (``insitu.trace_client.pseudonym``,
a keyed hash of the login name), details are short identifier-like values.

Canonical JSON (defines the leaf hash; the offline verifier recomputes it)
--------------------------------------------------------------------------
``canonical_bytes(trace)`` is the UTF-8 encoding of one JSON object with

* exactly the keys ``id, version, time, caller, user, action, dataset_ids,
  digests, details`` (every key always present, ``user`` may be ``null``),
  sorted by key (code point order) at every level;
* no whitespace: separators ``,`` and ``:``; non-ASCII characters written as
  themselves (not ``\\u`` escapes);
* ``id``: the UUID in lowercase hex with hyphens (``8-4-4-4-12``);
* ``time``: UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fraction digits);
* ``action``: the action name (e.g. ``"USE_DATASETS"``);
* ``dataset_ids``: a list in the order the caller gave it;
* ``digests``: an object (name -> lowercase hex digest);
* ``details``: an object whose values are strings, integers, booleans, null,
  or lists of those (no floats, no nested objects).

The leaf hash is ``sha256(0x00 || canonical_bytes)``; Merkle interior nodes are
``sha256(0x01 || left || right)`` (see ``insitu.merkle``).

Limits: at most 256 dataset ids, 1,024 digests, 64 detail keys; the canonical
encoding of a whole trace at most 64 KiB. Unknown fields, unknown actions,
missing fields, naive times and oversize payloads are refused.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from insitu import merkle
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
MAX_CANONICAL_BYTES = 64 * 1024
MAX_DATASET_IDS = 256
MAX_DIGESTS = 1024
MAX_DETAILS = 64
MAX_LIST_ITEMS = 256



class Action(str, enum.Enum):
    """Every action on data that is traced."""

    CREATE_DATASET = "CREATE_DATASET"
    UPDATE_DATASET = "UPDATE_DATASET"
    RELEASE_DATASET = "RELEASE_DATASET"
    PUBLISH_DATASET = "PUBLISH_DATASET"
    INVALIDATE_DATASET = "INVALIDATE_DATASET"
    REQUEST_ACCESS = "REQUEST_ACCESS"
    GRANT_ACCESS = "GRANT_ACCESS"
    REJECT_ACCESS = "REJECT_ACCESS"
    REVOKE_ACCESS = "REVOKE_ACCESS"
    USE_DATASETS = "USE_DATASETS"
    END_SESSION = "END_SESSION"  # details.reason: stopped, revoked, invalidated, expired, crashed
    START_FAILED = "START_FAILED"  # the session's workspace never started (instead of END_SESSION)
    REQUEST_EXPORT = "REQUEST_EXPORT"
    APPROVE_EXPORT = "APPROVE_EXPORT"
    REJECT_EXPORT = "REJECT_EXPORT"
    RETURN_EXPORT = "RETURN_EXPORT"  # sent back to the requester for changes (not a rejection)
    DOWNLOAD_EXPORT = "DOWNLOAD_EXPORT"
    REFUSE_DOWNLOAD = "REFUSE_DOWNLOAD"  # the workspace gateway refused to hand out a data file
    LOOKUP_PSEUDONYM = "LOOKUP_PSEUDONYM"  # an auditor turned a login name into its pseudonym


# identifiers: dataset ids, caller names, detail keys, digest names
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]*$")
]
DetailKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
# a digest name may be a file path inside an export ("results/model 1.pt"):
# printable, no control characters, no leading/trailing space
DigestName = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$")
]
HexDigest = Annotated[str, StringConstraints(min_length=32, max_length=128, pattern=r"^[0-9a-f]+$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
DetailStr = Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
Scalar = Union[bool, int, DetailStr, None]  # bool before int: JSON true stays true
DetailValue = Union[Scalar, Annotated[list[Scalar], Field(max_length=MAX_LIST_ITEMS)]]

# detail keys that would carry personal data: refused outright
_PERSONAL_KEY = re.compile(
    r"(^|_)(email|e_mail|mail|login|username|user_name|full_name|first_name|last_name|surname|"
    r"patient|patient_name|birth|birthdate|dob|phone|address|ssn)(_|$)"
)
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[A-Za-z]{2,}")


def _format_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Trace(BaseModel):
    """One trace, as posted by a platform service (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    id: uuid.UUID = Field(description="chosen by the caller; posting the same id twice stores one trace")
    version: Literal[1] = SCHEMA_VERSION
    time: datetime = Field(description="when the action happened (timezone-aware, stored as UTC)")
    caller: Identifier = Field(description="the platform service that records the action")
    user: Pseudonym | None = Field(description="pseudonymous user id (insitu.trace_client.pseudonym) or null")
    action: Action
    dataset_ids: Annotated[list[Identifier], Field(max_length=MAX_DATASET_IDS)] = Field(default_factory=list)
    digests: Annotated[dict[DigestName, HexDigest], Field(max_length=MAX_DIGESTS)] = Field(default_factory=dict)
    details: Annotated[dict[DetailKey, DetailValue], Field(max_length=MAX_DETAILS)] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _aware_utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("time must carry a timezone (e.g. ...Z)")
        return v.astimezone(timezone.utc)

    @field_validator("details")
    @classmethod
    def _no_personal_data(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if _PERSONAL_KEY.search(key):
                raise ValueError(f"detail key {key!r} would carry personal data")
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and _EMAIL.search(item):
                    raise ValueError(f"detail {key!r} holds an e-mail address")
        return v

    @model_validator(mode="after")
    def _size(self) -> "Trace":
        n = len(canonical_bytes(self))
        if n > MAX_CANONICAL_BYTES:
            raise ValueError(f"trace too large: {n} bytes canonical (limit {MAX_CANONICAL_BYTES})")
        return self

    @field_serializer("time")
    def _ser_time(self, v: datetime) -> str:
        return _format_time(v)

    @field_serializer("id")
    def _ser_id(self, v: uuid.UUID) -> str:
        return str(v)

    def canonical_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "version": self.version,
            "time": _format_time(self.time),
            "caller": self.caller,
            "user": self.user,
            "action": self.action.value,
            "dataset_ids": list(self.dataset_ids),
            "digests": dict(self.digests),
            "details": {k: (list(v) if isinstance(v, list) else v) for k, v in self.details.items()},
        }

    def canonical_bytes(self) -> bytes:
        return canonical_bytes(self)

    def leaf_hash(self) -> bytes:
        return leaf_hash(canonical_bytes(self))


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON encoding of a plain JSON value (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def canonical_bytes(trace: Trace) -> bytes:
    return canonical_json(trace.canonical_dict())


def leaf_hash(canonical: bytes) -> bytes:
    """sha256(0x00 || canonical JSON bytes)."""
    return merkle.leaf_hash(canonical)


def parse_trace(data: dict[str, Any] | str | bytes) -> Trace:
    """Validate a trace from a dict or JSON text (raises pydantic.ValidationError)."""
    if isinstance(data, (str, bytes)):
        return Trace.model_validate_json(data)
    return Trace.model_validate(data)
