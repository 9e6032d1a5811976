"""The chart helm/insitu rendered and linted by real helm (4.1, from the set-up).

Executed: `helm lint --strict` and `helm template` with every example values
file (production with the values the Besu tool writes, as the chart README
says); every rendered manifest validates against the Kubernetes 1.33 schema,
strict; the values handed to the z2jh and Keycloak charts are checked by helm
against those charts' schemas (stand-ins in tests/kube/stubs/); every
environment variable a template sets on a platform container is read by the
code that runs there (pydantic-settings classes, the hub's traitlets options,
the hub login), checked by changing its value and seeing the settings change;
every Secret key a template references is documented in values.yaml.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .kubetools import CHART, run, stubbed_chart, tool

K8S_VERSION = "1.33.0"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    base = tmp_path_factory.mktemp("chart")
    spec = importlib.util.spec_from_file_location("besu_qbft", CHART / "tools" / "besu_qbft.py")
    besu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(besu)
    assert besu.main(["--validators", "4", "--release", "insitu", "--out", str(base / "besu")]) == 0
    return {"dir": stubbed_chart(base), "home": base / "helm", "besu": base / "besu" / "besu-values.yaml"}


def _values_args(chart, example: Path) -> list[str]:
    args = ["-f", str(example)]
    if "genesis" not in (yaml.safe_load(example.read_text()).get("besu") or {}):
        args += ["-f", str(chart["besu"])]  # production: genesis and bootnodes from the Besu tool
    return args


def helm_template(chart, *values_args: str, release="insitu", namespace="insitu"):
    r = run([tool("helm"), "template", release, str(chart["dir"]), "-n", namespace, *values_args], home=chart["home"])
    return r


@pytest.fixture(scope="module")
def rendered(chart):
    out = {}
    for ex in EXAMPLES:
        r = helm_template(chart, *_values_args(chart, ex))
        assert r.returncode == 0, r.stderr
        out[ex.stem] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_helm_lint_passes_strict(chart, example):
    r = run([tool("helm"), "lint", "--strict", str(chart["dir"]), *_values_args(chart, example)], home=chart["home"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize("example", [e.stem for e in EXAMPLES])
def test_every_rendered_manifest_validates_strictly(rendered, example):
    docs = rendered[example]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy", "Namespace", "PersistentVolumeClaim",
            "ConfigMap", "PodDisruptionBudget"} <= kinds
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_strict_validation_is_not_a_rubber_stamp(rendered):
    doc = next(d for d in rendered["minimal"] if d["kind"] == "Deployment")
    doc = yaml.safe_load(yaml.safe_dump(doc))
    doc["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_helm_refuses_a_chart_without_genesis(chart):
    r = helm_template(chart, "--set", "besu.genesis=")
    assert r.returncode != 0 and "besu.genesis is required" in r.stderr


@pytest.mark.parametrize("bad", ["jupyterhub.hub.notAnOption=1", "jupyterhub.singleuser.storage.type=nowhere",
                                 "keycloak.keycloakConfigCli.realm=x", "keycloak.auth.adminPassword=x",
                                 "tracer.signerKey=x"])
def test_values_handed_to_the_dependencies_are_their_documented_keys(chart, bad):
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"), "--set", bad)
    assert r.returncode != 0 and "schema" in r.stderr, r.stderr


# --- environment variables: each one is read by the code in the container ----

def _dataset_service_settings():
    from dataset_service.airlock.settings import AirlockSettings
    from dataset_service.governance.settings import GovernanceSettings
    from dataset_service.settings import Settings

    return (Settings(_env_file=None).model_dump(), GovernanceSettings().model_dump(), AirlockSettings().model_dump())


def _tracer_settings():
    from dataclasses import asdict

    from insitu.identity import HubAuthConfig
    from insitu.names import SERVICE_TRACER
    from tracer.settings import TracerSettings

    # as tracer.app.create_app reads it: the service's own name, the rest from the environment
    return (TracerSettings().model_dump(), asdict(HubAuthConfig.from_env(default_service_name=SERVICE_TRACER)))


LOGIN_TRAITS = ("client_id", "client_secret", "authorize_url", "token_url", "userdata_url", "oauth_callback_url")


def _hub_settings():
    """What the chart's hub configuration makes of the environment: the configuration, and the
    login settings of the authenticator it names (which read their own variables, OAUTH_*)."""
    from traitlets.config import Config
    from traitlets.utils.importstring import import_item

    c = Config()
    for code in _values()["jupyterhub"]["hub"]["extraConfig"].values():
        exec(compile(code, "extraConfig", "exec"), {"c": c})
    auth = import_item(c.JupyterHub.authenticator_class)(config=c)
    login = [(t, getattr(auth, t)) for t in LOGIN_TRAITS]
    # functions in the configuration (template variables) are made afresh on each run: their
    # addresses say nothing about the environment
    return re.sub(r" at 0x[0-9a-f]+", "", repr(sorted((k, repr(v)) for k, v in c.items())) + repr(login))


READERS = {"dataset-service": _dataset_service_settings, "tracer": _tracer_settings, "hub": _hub_settings}


def _values():
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _env_value(e) -> str:
    if isinstance(e, dict) and "valueFrom" in e:
        ref = e["valueFrom"]["secretKeyRef"]
        return f"secret-{ref['name']}-{ref['key']}"
    return str(e["value"] if isinstance(e, dict) else e)


def _snapshot(reader, env: dict[str, str]):
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith(("INSITU_", "TRACER_", "JUPYTERHUB_"))]:
            del os.environ[k]
        os.environ.update(env)
        try:
            return reader()
        except Exception as exc:  # a value the code refuses is a value it reads
            return ("refused", type(exc).__name__, str(exc))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def unread_variables(component: str, env: dict[str, str]) -> list[str]:
    """Names in ``env`` whose value changes nothing the component's code reads."""
    reader = READERS[component]
    base = _snapshot(reader, env)
    assert base[0] != "refused", f"{component} refuses the chart's environment: {base}"
    return [name for name in env if _snapshot(reader, dict(env, **{name: env[name] + "-changed"})) == base]


def platform_env(docs) -> dict[str, dict[str, str]]:
    out = {}
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["name"] in READERS:
                out[c["name"]] = {e["name"]: _env_value(e) for e in c.get("env", [])}
    return out


def test_every_template_variable_is_read_by_its_component(rendered):
    for example, docs in rendered.items():
        env = platform_env(docs)
        assert set(env) == {"dataset-service", "tracer"}
        for component, variables in env.items():
            assert variables, component
            assert unread_variables(component, variables) == [], (example, component)


def test_every_hub_variable_is_read_by_the_hub_configuration():
    env = {k: _env_value(v) for k, v in _values()["jupyterhub"]["hub"]["extraEnv"].items()}
    assert unread_variables("hub", env) == []
    # and the check bites: a name nothing reads
    assert unread_variables("hub", dict(env, OAUTH_CLIENT_IDENT="jupyterhub")) == ["OAUTH_CLIENT_IDENT"]


def test_an_unread_variable_is_caught(rendered):
    """The check fails on the names the chart used to set (read by nothing)."""
    env = platform_env(rendered["minimal"])
    assert unread_variables("dataset-service", dict(env["dataset-service"], DATASET_SERVICE_LAKE_DIR="/srv/lake")) == [
        "DATASET_SERVICE_LAKE_DIR"]
    assert unread_variables("tracer", dict(env["tracer"], TRACER_SIGNER_KEY="0xabc")) == ["TRACER_SIGNER_KEY"]


# --- Secret keys: each one referenced is documented ------------------------

def documented_secret_keys() -> dict[str, set[str]]:
    """Secret name (its default in values.yaml) -> the keys named in backticks in
    the comment right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    out: dict[str, set[str]] = {}
    for i, line in enumerate(lines):
        m = re.match(r"\s*\w*[sS]ecret:\s*([\w.-]+)\s*$", line)
        if not m:
            continue
        j, comment = i - 1, []
        while j >= 0 and lines[j].strip().startswith("#"):
            comment.append(lines[j])
            j -= 1
        out[m.group(1)] = set(re.findall(r"`([\w.-]+)`", " ".join(comment)))
    return out


def secret_refs(obj):
    if isinstance(obj, dict):
        if "secretKeyRef" in obj:
            yield obj["secretKeyRef"]["name"], obj["secretKeyRef"]["key"]
        for v in obj.values():
            yield from secret_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from secret_refs(v)


def undocumented(refs) -> list[tuple[str, str]]:
    docs = documented_secret_keys()
    return sorted({(n, k) for n, k in refs if k not in docs.get(n, set())})


def test_every_secret_key_referenced_is_documented(rendered):
    refs = [r for docs in rendered.values() for r in secret_refs(docs)]
    refs += list(secret_refs(_values()["jupyterhub"]))
    assert {n for n, _ in refs} >= {"insitu-service-tokens", "insitu-dataset-db", "insitu-tracer-signer"}
    assert undocumented(refs) == []
    # and the check bites: a key nobody documents
    assert undocumented(refs + [("insitu-tracer-signer", "signer")]) == [("insitu-tracer-signer", "signer")]


def test_hub_secret_is_the_one_the_services_use(rendered):
    names = {n for n, _ in secret_refs(_values()["jupyterhub"])}
    assert names == {_values()["serviceTokensSecret"]}
