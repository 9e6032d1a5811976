"""The auditor's web pages of the tracer (server-rendered, no JavaScript)."""
