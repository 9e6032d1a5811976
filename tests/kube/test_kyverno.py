"""Kyverno policies: schema-valid, and their `kyverno test` fixtures agree with
the spawner's pre-flight check (hub/preflight.py).

The Kyverno CLI itself runs in test_kyverno_cli.py. Here: every policy against
Kyverno's ClusterPolicy schema (vendored, tests/kube/schemas), every
kyverno-test.yaml against the CLI's Test schema, every fixture Pod against the
Kubernetes OpenAPI schema (kubernetes-validate, strict), and every expected
result of every suite through hub/preflight.py, which must give the same pass /
fail / skip.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hub import preflight

ROOT = Path(__file__).resolve().parents[2]
KYVERNO = ROOT / "kyverno"
SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSION = "1.33.0"

POLICY_FILES = sorted((KYVERNO / "policies").glob("*.yaml"))
SUITES = sorted(p.parent for p in (KYVERNO / "tests").glob("*/kyverno-test.yaml"))


def _load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def policy_validator():
    schema = json.loads((SCHEMAS / "kyverno-clusterpolicy-v1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def test_validator():
    schema = json.loads((SCHEMAS / "kyverno-cli-test-v1alpha1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _policies() -> dict[str, dict]:
    out = {}
    for f in POLICY_FILES:
        (doc,) = _load_all(f)
        out[doc["metadata"]["name"]] = doc
    return out


def test_there_are_seven_policies_each_with_a_suite():
    names = {p.stem for p in POLICY_FILES}
    assert names == {"workspace-images", "workspace-volumes", "workspace-security", "workspace-datasets", "workspace-egress",
                     "workspace-gateway", "workspace-limits"}
    assert {s.name for s in SUITES} == names


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.stem)
def test_policy_matches_kyverno_clusterpolicy_schema(path, policy_validator):
    (doc,) = _load_all(path)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in policy_validator.iter_errors(doc)]
    assert errors == []
    assert doc["apiVersion"] == "kyverno.io/v1" and doc["kind"] == "ClusterPolicy"
    for rule in doc["spec"]["rules"]:
        if "validate" in rule:
            assert doc["spec"]["validationFailureAction"] == "Enforce", "validate policies must enforce"


def test_schema_rejects_what_kyverno_would_reject(policy_validator):
    """The vendored schema is not a rubber stamp."""
    (doc,) = _load_all(KYVERNO / "policies" / "workspace-datasets.yaml")
    bad = copy.deepcopy(doc)
    bad["spec"]["rules"][1]["context"][1]["apiCall"]["servce"] = {"url": "http://x"}  # typo
    assert not policy_validator.is_valid(bad)
    bad = copy.deepcopy(doc)
    bad["spec"]["rules"][1]["context"][1]["apiCall"]["method"] = "DELETE"
    assert not policy_validator.is_valid(bad)
    bad = copy.deepcopy(doc)
    bad["spec"]["validationFailureAction"] = "Block"
    assert not policy_validator.is_valid(bad)
    bad = copy.deepcopy(doc)
    bad["spec"]["rules"][0]["validate"]["denny"] = bad["spec"]["rules"][0]["validate"].pop("deny")
    assert not policy_validator.is_valid(bad)


def test_preflight_rules_are_exactly_the_policies_validate_rules():
    validate_rules = {
        (name, r["name"]) for name, doc in _policies().items() for r in doc["spec"]["rules"] if "validate" in r
    }
    assert set(preflight.RULES) == validate_rules


def test_preflight_defaults_are_the_policy_literals():
    """One set of pinned values: the policy text and PreflightConfig agree."""
    cfg = preflight.PreflightConfig()
    pols = _policies()
    img = pols["insitu-workspace-images"]["spec"]["rules"][0]["validate"]["foreach"][0]["pattern"]["image"]
    assert tuple(p.strip() for p in img.split("|")) == cfg.allowed_images
    vols = pols["insitu-workspace-volumes"]["spec"]["rules"]
    assert vols[0]["validate"]["deny"]["conditions"]["any"][0]["value"] == ["name", *cfg.volume_types]
    text = (KYVERNO / "policies" / "workspace-volumes.yaml").read_text()
    assert f"claimName == '{cfg.lake_claim}'" in text and f"claimName == '{cfg.datasets_claim}'" in text
    sec = pols["insitu-workspace-security"]["spec"]["rules"]
    conds = sec[0]["validate"]["deny"]["conditions"]["any"]
    assert {"key": "{{ request.object.spec.securityContext.runAsUser || `0` }}", "operator": "LessThan", "value": cfg.min_uid} in conds
    assert any(c["value"] == str(cfg.primary_gid) and "runAsGroup" in c["key"] for c in conds)
    assert any(c["value"] == list(cfg.forbidden_pod_security_keys) for c in conds)


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_suite_files_are_well_formed(suite, test_validator):
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in test_validator.iter_errors(test)]
    assert errors == []
    for p in test["policies"]:
        assert (suite / p).resolve().is_file()
    names = {d["metadata"]["name"] for r in test["resources"] for d in _load_all(suite / r)}
    pols = _policies()
    for res in test["results"]:
        assert set(res["resources"]) <= names, f"unknown resources in {res}"
        rules = {r["name"] for r in pols[res["policy"]]["spec"]["rules"]}
        assert res["rule"] in rules


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_suite_fixtures_are_valid_kubernetes_objects(suite):
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    files = list(test["resources"]) + [r["generatedResource"] for r in test["results"] if "generatedResource" in r]
    for f in files:
        for doc in _load_all(suite / f):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_every_validate_rule_has_passing_and_bypass_fixtures(suite):
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    pols = _policies()
    for pol in {r["policy"] for r in test["results"]}:
        for rule in pols[pol]["spec"]["rules"]:
            got = {r["result"] for r in test["results"] if r["rule"] == rule["name"] and r["resources"]}
            if "validate" in rule:
                assert {"pass", "fail"} <= got, f"{pol}/{rule['name']} lacks a pass or a fail fixture"
            else:  # generate: what it must not generate is checked against `kyverno apply`
                assert "pass" in got


def _cases():
    for suite in SUITES:
        test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
        for res in test["results"]:
            for name in res["resources"]:
                yield pytest.param(suite, res, name, id=f"{suite.name}:{res['rule']}:{name}:{res['result']}")


@pytest.mark.parametrize("suite,result,name", list(_cases()))
def test_preflight_agrees_with_kyverno_suite(suite, result, name):
    test = yaml.safe_load((suite / "kyverno-test.yaml").read_text())
    docs = {d["metadata"]["name"]: d for r in test["resources"] for d in _load_all(suite / r)}
    obj = docs[name]
    values = test.get("values") or {}
    ns_labels = {n["name"]: n["labels"] for n in values.get("namespaceSelector", [])}
    if "generatedResource" in result or obj["kind"] == "Namespace":
        generated = preflight.generated_network_policies(obj)
        if result["result"] == "pass":
            assert generated == _load_all(suite / result["generatedResource"])
        else:
            assert result["result"] == "skip" and generated == []
        return
    session = None
    for p in values.get("policies", []):
        if p["name"] == result["policy"]:
            for r in p.get("resources", []):
                if r["name"] == name:
                    session = r["values"].get("session")
    got, messages = preflight.evaluate(
        obj,
        result["policy"],
        result["rule"],
        session=session,
        namespace_labels=ns_labels.get(obj["metadata"].get("namespace", "default"), {}),
    )
    assert got == result["result"], messages
