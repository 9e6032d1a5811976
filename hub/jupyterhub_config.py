"""JupyterHub configuration of insitu.

Run with ``jupyterhub -f hub/jupyterhub_config.py`` (``python -m hub up`` does
this for the embedded default). Everything is derived from
:class:`hub.settings.InsituHub`, whose options (with help text) can be set

- here or in a file named by ``INSITU_HUB_CONFIG`` (loaded below), as
  ``c.InsituHub.<option> = ...``, e.g. ``c.InsituHub.mode = "kubernetes"``;
- from the environment, ``INSITU_<OPTION>`` (e.g. ``INSITU_HUB_PORT=8000``).

Embedded default (``mode = "embedded"``): configurable-http-proxy from
node_modules on 127.0.0.1:8000; the dataset service, the tracer and the dev
chain as JupyterHub managed services with OAuth; the revocation reconciler as
the managed service ``insitu-hub``; local accounts from ``<var>/users.yaml``
(the state folder ``InsituHub.var_dir``, default ``/var/lib/insitu``); workspaces in
``hub.sandbox.LocalSandboxSpawner``.

Kubernetes (``mode = "kubernetes"``): the same services registered as external
services at their cluster URLs, Keycloak logins, ``hub.kube`` pods. The Helm
chart sets the URLs and tokens through ``INSITU_*`` variables.

Any other JupyterHub option can be set after the ``configure_hub`` call in an
extra file (``INSITU_HUB_CONFIG``): it wins.
"""

import os
import sys
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
if str(_root) not in sys.path:
    sys.path.insert(0, str(_root))

from hub.config import configure_hub  # noqa: E402
from hub.settings import InsituHub  # noqa: E402

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

_extra = os.environ.get("INSITU_HUB_CONFIG")
_pre = os.environ.get("INSITU_HUB_PRECONFIG")
if _pre:
    load_subconfig(_pre)  # noqa: F821  (may set c.InsituHub.*)

configure_hub(c, InsituHub(config=c))

if _extra:
    load_subconfig(_extra)  # noqa: F821
