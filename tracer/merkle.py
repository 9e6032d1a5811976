"""Moved to ``insitu.merkle`` (the core package); this name stays for code not yet moved."""
from insitu.merkle import *  # noqa: F401,F403
