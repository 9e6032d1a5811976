"""The desktop connection's lock-down against Guacamole's own protocol definitions.

Guacamole's web application and guacd cannot run here (see test_guacamole.py),
but the protocol definitions that the web application and its JDBC extension
accept ship in ``guacamole-ext`` (``org/apache/guacamole/protocols/*.json``),
which Maven Central serves. ``scripts/setup.d/41-guacamole.sh`` fetches it at
the version of the chart's Guacamole image. A misspelt parameter would be
stored by Guacamole and ignored by guacd: these tests catch it.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import yaml

from hub.guacamole import LOCKDOWN_PARAMETERS, connection_body

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "helm" / "insitu" / "values.yaml").read_text())
VERSION = re.match(r"guacamole/guacamole:(\d+\.\d+\.\d+)", VALUES["guacamole"]["webImage"]).group(1)
JAR = Path(os.environ.get("INSITU_CACHE_DIR") or "/var/cache/insitu") / "guacamole" / f"guacamole-ext-{VERSION}.jar"


def _protocol(name: str) -> dict[str, dict]:
    if not JAR.exists():
        pytest.skip(f"{JAR} is not set up (scripts/setup.d/41-guacamole.sh)")
    with zipfile.ZipFile(JAR) as z:
        spec = json.loads(z.read(f"org/apache/guacamole/protocols/{name}.json"))
    assert spec["name"] == name
    return {f["name"]: f for form in spec["connectionForms"] for f in form["fields"]}


def test_every_connection_parameter_is_a_vnc_parameter_of_the_deployed_guacamole():
    vnc = _protocol("vnc")
    body = connection_body("insitu-desktop-alice-1", "10.42.0.17", 5901, "secret")
    assert body["protocol"] == "vnc"
    unknown = sorted(set(body["parameters"]) - set(vnc))
    assert unknown == [], f"not VNC parameters of Guacamole {VERSION}: {unknown}"
    for name, value in body["parameters"].items():
        field = vnc[name]
        if field["type"] == "BOOLEAN":
            assert value in ("true", "false"), (name, value)
        elif field["type"] == "NUMERIC":
            assert value.isdigit(), (name, value)


def test_every_way_out_of_the_vnc_protocol_is_closed():
    """Each VNC parameter that can carry data out of the desktop is set closed."""
    vnc = _protocol("vnc")
    ways_out = {n for n in vnc if re.search(r"sftp|copy|download|upload|drive|print|audio|recording", n)}
    # what the protocol offers, in this version: copy, SFTP transfer, audio, session recording
    assert {"disable-copy", "enable-sftp", "sftp-disable-download", "sftp-disable-upload",
            "enable-audio"} <= ways_out
    assert LOCKDOWN_PARAMETERS["disable-copy"] == "true"
    assert LOCKDOWN_PARAMETERS["enable-sftp"] != "true"
    assert LOCKDOWN_PARAMETERS["sftp-disable-download"] == "true"
    assert LOCKDOWN_PARAMETERS["sftp-disable-upload"] == "true"
    assert LOCKDOWN_PARAMETERS["enable-audio"] != "true"
    # every enable-* switch of the protocol is either set off or is not a way out
    for name in ways_out:
        if name.startswith("enable-"):
            assert LOCKDOWN_PARAMETERS.get(name, "") != "true", name


def test_vnc_has_no_drive_or_printing_channel_unlike_rdp():
    """Drive redirection and printing exist only for RDP: a VNC connection cannot turn them on."""
    vnc, rdp = _protocol("vnc"), _protocol("rdp")
    assert {"enable-drive", "enable-printing"} <= set(rdp)  # the check below would see them
    assert not [n for n in vnc if "drive" in n or "print" in n]
