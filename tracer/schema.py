"""Moved to ``insitu.trace`` (the core package); this name stays for code not yet moved."""
from insitu.trace import *  # noqa: F401,F403
from insitu.trace import (MAX_CANONICAL_BYTES, SCHEMA_VERSION, Action, Trace, canonical_bytes,  # noqa: F401
                          canonical_json, leaf_hash, parse_trace)
