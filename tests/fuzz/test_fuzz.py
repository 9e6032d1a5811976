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


def test_the_state_snapshot_sees_database_and_folder_changes(governance_stack):
    """The check behind "a refused request changed nothing" can see a change when there is one."""
    from fuzz_support import snapshot

    st = governance_stack
    before = snapshot(st)
    assert snapshot(st) == before  # nothing happened: the same
    ds = st.add_dataset("Snapshot canary")
    after_db = snapshot(st)
    assert after_db[0] != before[0]  # a row in the dataset service's database
    (st.workdir / "datasets").mkdir(exist_ok=True)
    (st.workdir / "datasets" / f"{ds}.canary").write_text("x")
    assert snapshot(st)[2] != after_db[2]  # a file under the stack's folders
    (st.workdir / "datasets" / f"{ds}.canary").unlink()
