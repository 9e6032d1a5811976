"""Guacamole's database: created by the chart's init job, tested by rendering and
by running the job's SQL against a real PostgreSQL.

The chart renders (real helm, the stand-in dependency charts of
test_helm_render.py) a post-install/post-upgrade Job whose init container prints
the schema of the deployed Guacamole image (``initdb.sh --postgresql``) and whose
main container runs ``files/guacamole-db-init.sql`` with psql. Here that SQL,
taken from the rendered ConfigMap, runs with the schema of that same Guacamole
version (tests/kube/guacamole_schema/, copied from guacamole-client 1.5.5) on the
tests' throwaway PostgreSQL, twice. Not run here: the images themselves (no
registry for them) and Guacamole logging in with the account (its web
application is in no reachable registry either).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from fixtures.postgres import PG_BIN

from .kubetools import CHART
from .test_helm_render import _values_args, chart, helm_template  # noqa: F401  (chart: fixture)

SCHEMA = Path(__file__).resolve().parent / "guacamole_schema"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def docs(chart):  # noqa: F811
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"))
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _named(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def test_the_chart_renders_the_init_job(docs):
    job = _named(docs, "Job", "insitu-guacamole-db-init")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    (schema,) = pod["initContainers"]
    assert schema["image"] == VALUES["guacamole"]["webImage"]
    assert "/opt/guacamole/bin/initdb.sh --postgresql > /work/schema.sql" in schema["command"][-1]
    (init,) = pod["containers"]
    assert init["image"] == VALUES["postgresql"]["image"]
    assert "psql -X -f /sql/init.sql" in init["command"][-1]
    env = {e["name"]: e for e in init["env"]}
    secret = lambda n: (env[n]["valueFrom"]["secretKeyRef"]["name"], env[n]["valueFrom"]["secretKeyRef"]["key"])  # noqa: E731
    admin = VALUES["guacamole"]["adminSecret"]
    assert secret("PGPASSWORD") == (VALUES["postgresql"]["passwordSecret"], "password")
    assert secret("GUACAMOLE_ADMIN_USERNAME") == (admin, "username")
    assert secret("GUACAMOLE_ADMIN_PASSWORD") == (admin, "password")
    # the role's password is the one the Guacamole Deployment connects with
    web = _named(docs, "Deployment", "insitu-guacamole")["spec"]["template"]["spec"]["containers"][0]
    web_env = {e["name"]: e for e in web["env"]}
    assert web_env["POSTGRESQL_PASSWORD"]["valueFrom"] == env["GUACAMOLE_DB_PASSWORD"]["valueFrom"]
    assert web_env["POSTGRESQL_DATABASE"]["value"] == "guacamole" and web_env["POSTGRESQL_USER"]["value"] == "guacamole"
    assert env["PGHOST"]["value"] == web_env["POSTGRESQL_HOSTNAME"]["value"] == "insitu-postgresql"
    mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    assert env["GUACAMOLE_SCHEMA_FILE"]["value"].startswith("/work/") and mounts["/work"]["readOnly"]
    cm = _named(docs, "ConfigMap", "insitu-guacamole-db-init")
    assert cm["data"]["init.sql"] == (CHART / "files" / "guacamole-db-init.sql").read_text()


def test_the_job_reaches_postgresql_only(docs):
    own = _named(docs, "NetworkPolicy", "insitu-guacamole-db-init")
    assert own["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "guacamole-db-init"
    assert "ingress" not in own["spec"]  # nothing may connect to it
    targets = [(rule["to"][0].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                or rule["to"][0]["podSelector"]["matchLabels"].get("k8s-app"), [p["port"] for p in rule["ports"]])
               for rule in own["spec"]["egress"]]
    assert targets == [("postgresql", [5432]), ("kube-dns", [53, 53])]
    pg = _named(docs, "NetworkPolicy", "insitu-postgresql-from-guacamole-db-init")
    assert pg["spec"]["policyTypes"] == ["Ingress"] and pg["spec"]["ingress"][0]["ports"] == [{"port": 5432}]


def _guacamole_hash(password: str, salt: bytes) -> bytes:
    """SHA256PasswordEncryptionService of guacamole-auth-jdbc 1.5.5."""
    return hashlib.sha256((password + salt.hex().upper()).encode()).digest()


def test_guacamole_hash_matches_the_schema_default_admin():
    """The reproduction of Guacamole's hashing is right: the schema's guacadmin/guacadmin."""
    salt = bytes.fromhex("FE24ADC5E11E2B25288D1704ABE67A79E342ECC26064CE69C5B3177795A82264")
    assert _guacamole_hash("guacadmin", salt).hex().upper() == \
        "CA458A7D494E3BE824F5E1E175A1556C0F8EEF2C2D7DF3633BEC4A29C4411960"
    assert "CA458A7D494E3BE824F5E1E175A1556C0F8EEF2C2D7DF3633BEC4A29C4411960" in \
        (SCHEMA / "002-create-admin-user.sql").read_text()


def _run_init(sql: str, port: int, tmp: Path, *, admin: str, password: str) -> subprocess.CompletedProcess:
    schema = tmp / "schema.sql"  # what initdb.sh --postgresql prints: the schema files in order
    schema.write_text("".join(p.read_text() for p in sorted(SCHEMA.glob("0*.sql"))))
    script = tmp / "init.sql"
    script.write_text(sql)
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres", PGDATABASE="postgres",
               GUACAMOLE_DB_PASSWORD="db-" + password, GUACAMOLE_ADMIN_USERNAME=admin,
               GUACAMOLE_ADMIN_PASSWORD=password, GUACAMOLE_SCHEMA_FILE=str(schema))
    return subprocess.run([str(PG_BIN / "psql"), "-X", "-f", str(script)], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.postgres
def test_the_init_sql_creates_the_database_and_is_idempotent(docs, pg_cluster, tmp_path):
    port, _ = pg_cluster
    sql = _named(docs, "ConfigMap", "insitu-guacamole-db-init")["data"]["init.sql"]
    r = _run_init(sql, port, tmp_path, admin="insitu-hub", password="first-secret")
    assert r.returncode == 0, r.stdout + r.stderr
    url = f"postgresql://postgres@127.0.0.1:{port}/guacamole"

    def admin_row(conn):
        return conn.execute(
            "SELECT u.password_hash, u.password_salt, u.disabled FROM guacamole_user u "
            "JOIN guacamole_entity e USING (entity_id) WHERE e.name = 'insitu-hub' AND e.type = 'USER'").fetchone()

    with psycopg.connect(url, autocommit=True) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'guacamole_connection'").fetchone()
        assert owner == ("guacamole",)
        assert conn.execute("SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid "
                            "WHERE rolname = 'guacamole'").fetchone() == (True, True)
        h, salt, disabled = admin_row(conn)
        assert bytes(h) == _guacamole_hash("first-secret", bytes(salt)) and not disabled
        assert len(bytes(salt)) == 32
        perms = {p for (p,) in conn.execute(
            "SELECT permission::text FROM guacamole_system_permission JOIN guacamole_entity USING (entity_id) "
            "WHERE name = 'insitu-hub'")}
        assert perms == {"CREATE_CONNECTION", "CREATE_USER", "ADMINISTER"}
        # the schema's default administrator with its well-known password is gone
        assert conn.execute("SELECT count(*) FROM guacamole_entity WHERE name = 'guacadmin'").fetchone() == (0,)
        # a connection the hub made survives the next run
        conn.execute("INSERT INTO guacamole_connection (connection_name, protocol) VALUES ('desk-1', 'vnc')")

    r = _run_init(sql, port, tmp_path, admin="insitu-hub", password="rotated-secret")
    assert r.returncode == 0, r.stdout + r.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        h, salt, _ = admin_row(conn)
        assert bytes(h) == _guacamole_hash("rotated-secret", bytes(salt))
        assert bytes(h) != _guacamole_hash("first-secret", bytes(salt))
        assert conn.execute("SELECT count(*) FROM guacamole_connection WHERE connection_name = 'desk-1'"
                            ).fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM guacamole_entity WHERE type = 'USER'").fetchone() == (1,)
