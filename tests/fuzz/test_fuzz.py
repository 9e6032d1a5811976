"""Both APIs fuzzed from their live OpenAPI specs, in the default suite (issue 19).

A real JupyterHub (configurable-http-proxy in front of the dataset service), the real tracer, and a
real hub token for every role (researcher, data manager, DAC member, auditor, admin, the two platform
services) and none. Every schemathesis check is on; the example count per operation, role and
mode is small so the run stays within a few minutes (``bench/fuzz.py`` runs longer). The test fails
on any 5xx, any answer that breaks the declared schema, and any refused request that changed the
databases or the folders.
"""
from __future__ import annotations

import pytest

from fuzz_support import ROLES, Report, fuzz

MAX_EXAMPLES = 1  # per operation, mode and role


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", ["dataset-service", "tracer"])
def test_fuzz_api(governance_stack, service):
    st = governance_stack
    st.add_dataset("Fuzz released", state="released")
    st.add_dataset("Fuzz published", state="published")
    report = fuzz(st, service, ROLES, MAX_EXAMPLES, Report())
    print(service, report.line())
    assert len(report.operations) >= (30 if service == "dataset-service" else 5)
    assert report.requests >= len(report.operations) * len(ROLES)
    assert not report.failures, "\n\n".join(report.failures[:20]) + f"\n\n{report.line()}"
