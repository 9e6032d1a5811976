"""Time: every stored and traced time is timezone-aware UTC."""
from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def utcnow_naive() -> dt.datetime:
    """Now in UTC without a timezone, for columns that store naive UTC (the tracer's)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def aware(t: dt.datetime | None) -> dt.datetime | None:
    """A stored time made timezone-aware: SQLite hands back naive datetimes, and every time stored is UTC."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=dt.timezone.utc)
