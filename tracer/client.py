"""Moved to ``insitu.trace_client`` (the core package); this name stays for code not yet moved."""
from insitu.trace_client import *  # noqa: F401,F403
from insitu.trace_client import (TraceRejected, TracerClient, TracerError, TracerUnavailable, make_trace,  # noqa: F401
                                 pseudonym)
