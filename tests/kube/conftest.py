"""Fixtures of the Kubernetes tests: a real API server (tests/kube/cluster.py)."""

from __future__ import annotations

import pytest

from .cluster import CONTROL_PLANE, missing, start_cluster


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory):
    """kine + kube-apiserver on loopback for the whole session, stopped at its end.

    Skipped, saying why, only where the set-up has not built the binaries
    (scripts/setup.d/31-kube-cluster.sh builds them; the default suite expects them)."""
    absent = missing(CONTROL_PLANE)
    if absent:
        pytest.skip(f"not built: {', '.join(absent)} (run scripts/setup.d/31-kube-cluster.sh)")
    cluster = start_cluster(tmp_path_factory.mktemp("kube-cluster"))
    yield cluster
    cluster.stop()
