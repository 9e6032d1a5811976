"""The Kyverno CLI (v1.19.1, built from its Go module by the set-up) runs the
policies of kyverno/ for real.

* `kyverno test` on every suite of kyverno/tests/: every expected result holds.
* The spawner's pre-flight check (hub/preflight.py) against Kyverno's own
  verdicts: for every validate rule and every Pod fixture of a suite, the
  pre-flight verdict is written as the expected result of a derived suite, and
  Kyverno must confirm each one; for the generate rule, `kyverno apply` must
  generate the default-deny NetworkPolicy for exactly the namespaces for which
  the pre-flight check does.
* The CLI is not a rubber stamp: a wrong expectation fails.
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from hub import preflight

from .kubetools import ROOT, run, tool

KYVERNO = ROOT / "kyverno"
SUITES = sorted(p.parent for p in (KYVERNO / "tests").glob("*/kyverno-test.yaml"))
SUMMARY = re.compile(r"Test Summary: (\d+) tests? passed and (\d+) tests? failed")


def _load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kyverno_test(path):
    r = run([tool("kyverno"), "test", str(path), "--remove-color"], timeout=300)
    return r, [tuple(map(int, m)) for m in SUMMARY.findall(r.stdout)]


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_kyverno_test_passes_every_expected_result(suite):
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    expected = sum(len(r["resources"]) for r in test["results"])
    r, summary = kyverno_test(suite)
    assert r.returncode == 0 and summary == [(expected, 0)], r.stdout[-4000:] + r.stderr[-2000:]


def test_a_wrong_expectation_fails(tmp_path):
    shutil.copytree(KYVERNO, tmp_path / "kyverno")
    path = tmp_path / "kyverno" / "tests" / "workspace-security" / "kyverno-test.yaml"
    test = yaml.safe_load(path.read_text())
    first = next(r for r in test["results"] if r["result"] == "pass")
    first["resources"] = first["resources"][:1]
    first["result"] = "fail"
    path.write_text(yaml.safe_dump(test))
    r, summary = kyverno_test(path.parent)
    assert r.returncode != 0 and summary and summary[0][1] == 1


def _preflight_suite(suite) -> dict | None:
    """The suite with, as expected results, the pre-flight check's verdict for every
    validate rule of its policies on every Pod fixture."""
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    values = test.get("values") or {}
    ns_labels = {n["name"]: n["labels"] for n in values.get("namespaceSelector", [])}
    sessions = {(p["name"], r["name"]): r["values"].get("session")
                for p in values.get("policies", []) for r in p.get("resources", [])}
    pods = [d for f in test["resources"] for d in _load_all(suite / f) if d["kind"] == "Pod"]
    policies = [d for p in test["policies"] for d in _load_all((suite / p).resolve())]
    results = []
    for pol in policies:
        for rule in pol["spec"]["rules"]:
            if "validate" not in rule:
                continue
            for pod in pods:
                name = pod["metadata"]["name"]
                verdict, _ = preflight.evaluate(
                    pod, pol["metadata"]["name"], rule["name"],
                    session=sessions.get((pol["metadata"]["name"], name)),
                    namespace_labels=ns_labels.get(pod["metadata"].get("namespace", "default"), {}))
                results.append({"policy": pol["metadata"]["name"], "rule": rule["name"], "kind": "Pod",
                                "resources": [name], "result": verdict})
    if not results:
        return None
    test["results"] = results
    return test


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_preflight_verdicts_are_kyvernos(suite, tmp_path):
    derived = _preflight_suite(suite)
    if derived is None:
        pytest.skip("no validate rule in this suite")
    shutil.copytree(KYVERNO, tmp_path / "kyverno")
    target = tmp_path / "kyverno" / "tests" / suite.name / "kyverno-test.yaml"
    target.write_text(yaml.safe_dump(derived))
    r, summary = kyverno_test(target.parent)
    assert r.returncode == 0 and summary == [(len(derived["results"]), 0)], r.stdout[-6000:]
    verdicts = {x["result"] for x in derived["results"]}
    assert {"pass", "fail"} <= verdicts


def test_generated_network_policy_only_where_preflight_says(tmp_path):
    suite = KYVERNO / "tests" / "workspace-egress"
    policy = KYVERNO / "policies" / "workspace-egress.yaml"
    namespaces = [d for f in ("resources-pass.yaml", "resources-bypass.yaml") for d in _load_all(suite / f)]
    assert len(namespaces) >= 3
    for ns in namespaces:
        f = tmp_path / f"{ns['metadata']['name']}.yaml"
        f.write_text(yaml.safe_dump(ns))
        out = tmp_path / f"{ns['metadata']['name']}-generated.yaml"
        r = run([tool("kyverno"), "apply", str(policy), "-r", str(f), "-o", str(out), "--remove-color"], timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        generated = [d for d in yaml.safe_load_all(out.read_text()) if d] if out.exists() else []
        expected = preflight.generated_network_policies(ns)
        assert [(g["metadata"]["name"], g["metadata"]["namespace"], g["spec"]) for g in generated] == [
            (e["metadata"]["name"], e["metadata"]["namespace"], e["spec"]) for e in expected], ns["metadata"]["name"]
