"""Fixtures of the tracer tests: real anvil chains, stores, tracer processes (helpers in tracer_helpers.py)."""

from tracer_helpers import anvil, module_tracer, store, traces, tracer_factory  # noqa: F401
