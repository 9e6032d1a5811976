"""Time: every stored and traced time is timezone-aware UTC."""
from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def utcnow_naive() -> dt.datetime:
    """Now in UTC without a timezone, for columns that store naive UTC (the tracer's)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
