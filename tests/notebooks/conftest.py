"""Fixtures of the workspace-library and notebook tests: a real demo lake and a real built dataset."""
from __future__ import annotations

import pytest

from nb_demo import demo_dataset

DEMO_SUBJECTS, DEMO_SEED = 40, 7


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(lake, dataset folder): 40 subjects (about 60 studies, 120 series of 16 slices), all in one dataset.

    Shared by the tests that only read it."""
    return demo_dataset(tmp_path_factory.mktemp("nb-demo"), DEMO_SUBJECTS, DEMO_SEED)


@pytest.fixture
def small(tmp_path):
    """(lake, dataset folder) of 3 subjects with small volumes, private to one test (free to tamper with)."""
    return demo_dataset(tmp_path, 3, 11, slices=4, size=16)
