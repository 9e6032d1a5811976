"""The Helm chart helm/insitu: its values, schema, hub configuration and tools
(helm itself renders and lints it in test_helm_render.py).

Executed: values.schema.json is a valid JSON Schema; it accepts the default
values and every example (merged over the defaults, as Helm does) and rejects
unknown keys and unsafe settings; every ``.Values.x.y`` a template reads
exists in values.yaml; the chart's dependencies match their value sections;
the hub's extraConfig configures traits InsituKubeSpawner really has and
calls configure_hub, which hands the spawner the insitu-hub token; the Besu
QBFT tool writes a genesis whose extraData names exactly the generated
validators, with free gas. NOT executed here: an install and `helm test` on a
cluster (see helm/insitu/README.md)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from .test_kube_spawner import dummy_kubeconfig  # noqa: F401  (fixture)

CHART = Path(__file__).resolve().parents[2] / "helm" / "insitu"


def _schema():
    return json.loads((CHART / "values.schema.json").read_text())


def _values():
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _errors(values):
    v = jsonschema.Draft7Validator(_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(values)]


def test_schema_is_valid_draft7():
    jsonschema.Draft7Validator.check_schema(_schema())


def test_default_values_validate():
    assert _errors(_values()) == []


@pytest.mark.parametrize("example", sorted((CHART / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_example_values_validate(example):
    assert _errors(_merge(_values(), yaml.safe_load(example.read_text()))) == []


@pytest.mark.parametrize(
    "override",
    [
        {"datasetServce": {"replicas": 2}},  # typo at the top
        {"storage": {"lake": {"readOnly": False}}},  # unknown nested key
        {"storage": {"scratch": {"claimName": "x", "size": "1Gi", "accessMode": "ReadWriteMany", "create": True}}},
        {"storage": {"lake": {"accessMode": "ReadWriteMany"}}},  # the lake is only ever read-only
        {"networkPolicy": {"enabled": False}},  # default deny cannot be switched off
        {"besu": {"validators": 3}},  # QBFT needs 4 to tolerate one fault
        {"besu": {"bootnodes": ["enode://nothex@x:1"]}},
        {"tracer": {"replicas": 2}},  # one batcher
        {"tracer": {"resources": {"requests": {"cpu": "1", "memory": "1Gi", "gpu": "1"}}}},
        {"guacamole": {"guacdImage": "guacamole/guacd:latest; rm -rf /"}},
        {"images": {"tag": ""}},
    ],
)
def test_schema_rejects_unknown_keys_and_unsafe_settings(override):
    assert _errors(_merge(_values(), override)) != []


def _value_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _value_paths(v, prefix + (k,))


def test_templates_read_only_values_that_exist():
    known = set(_value_paths(_values()))
    used = set()
    for t in (CHART / "templates").rglob("*"):
        if t.is_file():
            for m in re.finditer(r"\$?\.Values((?:\.[A-Za-z0-9_]+)+)", t.read_text()):
                used.add(tuple(m.group(1).strip(".").split(".")))
    assert used, "templates read no values?"
    missing = sorted(".".join(p) for p in used if p not in known)
    assert missing == []


def test_templates_are_thin_and_balanced():
    for t in (CHART / "templates").rglob("*.yaml"):
        text = t.read_text()
        opens = len(re.findall(r"{{-?\s*(if|range|with|define)\b", text))
        ends = len(re.findall(r"{{-?\s*end\s*-?}}", text))
        assert opens == ends, f"{t.name}: {opens} blocks opened, {ends} closed"
        assert len(text.splitlines()) < 140, f"{t.name} is not thin"


def test_dependencies_match_value_sections():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"jupyterhub", "keycloak"}
    values = _values()
    for name, d in deps.items():
        assert d["condition"] == f"{name}.enabled" and values[name]["enabled"] is True
        assert re.fullmatch(r"\d+\.\d+\.\d+", d["version"])


def _hub_env(monkeypatch) -> dict[str, str]:
    """The hub's environment as the chart sets it, with a distinct value per Secret key."""
    env = {}
    for name, v in _values()["jupyterhub"]["hub"]["extraEnv"].items():
        if isinstance(v, dict):
            ref = v["valueFrom"]["secretKeyRef"]
            env[name] = f"token-of-{ref['key']}"
        else:
            env[name] = str(v)
    for name in [n for n in __import__("os").environ if n.startswith("INSITU_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def test_hub_extra_config_sets_real_spawner_traits(dummy_kubeconfig, monkeypatch):
    from traitlets.config import Config

    from hub.kube import InsituKubeSpawner

    _hub_env(monkeypatch)
    base = list(_values()["jupyterhub"]["hub"]["extraConfig"].values())
    examples = [[]]
    for ex in sorted((CHART / "examples").glob("*.yaml")):
        ec = (yaml.safe_load(ex.read_text()).get("jupyterhub") or {}).get("hub", {}).get("extraConfig") or {}
        examples.append(list(ec.values()))
    traits = set(InsituKubeSpawner.class_trait_names())
    for extra in examples:
        c = Config()
        for code in base + extra:  # z2jh runs the extraConfig snippets in order
            exec(compile(code, "extraConfig", "exec"), {"c": c})
        for section in ("KubeSpawner", "InsituKubeSpawner"):
            for name in c[section] if section in c else {}:
                assert name in traits, f"{section}.{name} is not a trait of InsituKubeSpawner"
        sp = InsituKubeSpawner(config=c, _mock=True)  # the values load into the real class
        if "gpu_sharing" in c.get("InsituKubeSpawner", {}):
            assert sp.kube_options().gpu_resource().startswith("nvidia.com/")


async def test_the_chart_calls_configure_hub_and_the_spawner_gets_the_hub_token(dummy_kubeconfig, monkeypatch):
    """The spawner's calls to the dataset service carry the insitu-hub token from
    the chart's Secret, at the dataset service's cluster URL."""
    from traitlets.config import Config

    from hub.kube import InsituKubeSpawner

    _hub_env(monkeypatch)
    c = Config()
    for code in _values()["jupyterhub"]["hub"]["extraConfig"].values():
        exec(compile(code, "extraConfig", "exec"), {"c": c})
    assert c.JupyterHub.spawner_class == "hub.kube.InsituKubeSpawner"
    assert "bind_url" not in c.JupyterHub and "db_url" not in c.JupyterHub  # z2jh's to set
    sp = InsituKubeSpawner(config=c, _mock=True)
    assert sp.dataset_service_token == "token-of-insitu-hub"
    assert sp.dataset_service_url == "http://insitu-dataset-service:8101/services/dataset-service"
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["dataset-service"]["api_token"] == "token-of-dataset-service"
    assert services["dataset-service"]["url"] == "http://insitu-dataset-service:8101"
    assert services["tracer"]["api_token"] == "token-of-tracer"
    assert services["insitu-admission"]["api_token"] == "token-of-insitu-admission"
    assert all("command" not in s for s in services.values() if s["name"] != "insitu-hub")  # external
    # without the Secret the hub refuses to start rather than invent tokens
    monkeypatch.delenv("INSITU_INSITU_HUB_TOKEN")
    with pytest.raises(ValueError, match="INSITU_INSITU_HUB_TOKEN"):
        exec(compile(_values()["jupyterhub"]["hub"]["extraConfig"]["insitu"], "extraConfig", "exec"), {"c": Config()})


def test_realm_has_the_role_groups_and_a_groups_claim():
    from insitu.names import ROLES

    realm = json.loads((CHART / "files" / "realm.json").read_text())
    assert {g["name"] for g in realm["groups"]} >= set(ROLES)
    hub_client = next(c for c in realm["clients"] if c["clientId"] == "jupyterhub")
    assert any(m["protocolMapper"] == "oidc-group-membership-mapper" for m in hub_client["protocolMappers"])


@pytest.fixture(scope="module")
def besu_tool():
    spec = importlib.util.spec_from_file_location("besu_qbft", CHART / "tools" / "besu_qbft.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_besu_genesis_names_exactly_the_validators_with_free_gas(besu_tool, tmp_path):
    assert besu_tool.main(["--validators", "4", "--release", "insitu", "--out", str(tmp_path)]) == 0
    genesis = json.loads((tmp_path / "genesis.json").read_text())
    secret = json.loads((tmp_path / "validator-keys.yaml").read_text())
    values = json.loads((tmp_path / "besu-values.yaml").read_text())
    from eth_keys import keys

    ks = [keys.PrivateKey(bytes.fromhex(secret["stringData"][f"validator-{i}"][2:])) for i in range(4)]
    addrs = ["0x" + k.public_key.to_canonical_address().hex() for k in ks]
    assert besu_tool.decode_extra_data(genesis["extraData"]) == addrs
    assert len(set(addrs)) == 4
    assert genesis["config"]["zeroBaseFee"] is True and "qbft" in genesis["config"]
    assert json.loads(values["besu"]["genesis"]) == genesis
    assert values["besu"]["bootnodes"][0] == f"enode://{ks[0].public_key.to_bytes().hex()}@insitu-besu-0:30303"
    assert (tmp_path / "validator-keys.yaml").stat().st_mode & 0o077 == 0
    # the generated values validate against the chart schema
    assert _errors(_merge(_values(), values)) == []
    with pytest.raises(SystemExit):
        besu_tool.build(3)
