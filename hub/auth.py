"""Authenticators: local accounts (embedded default) and Keycloak (production).

Both turn the user's groups into hub groups (``manage_groups``): the role
groups ``researchers``, ``data-managers``, ``dac``, ``auditors``, ``admins``
and the project groups ``project-<code>``. Any other group is dropped. A user
who holds no role group is refused at login (403), whatever else they hold.
Members of ``admins`` are hub admins.

Local accounts live in a YAML file::

    users:
      alice:
        password_hash: "$argon2id$v=19$..."   # argon2id (argon2-cffi)
        groups: [researchers, project-lung]

The file is read again whenever it changes, and ``refresh_user`` re-applies
it, so a group removed from the file is removed from the hub without a new
login (within ``Authenticator.auth_refresh_age``).

``python -m hub.auth hash`` prints the hash of a password read from stdin.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import threading
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from jupyterhub.auth import Authenticator
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Unicode, default

from insitu.names import PROJECT_PREFIX, ROLES

_PROJECT_RE = re.compile(r"^project-[a-z0-9][a-z0-9-]{0,62}$")
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# a hash of a random password, verified against for unknown users so that a
# wrong user name costs as much time as a wrong password
_DUMMY_HASH = hash_password(secrets.token_hex(16))


def insitu_groups(groups) -> list[str]:
    """The insitu groups among ``groups``: role groups and ``project-<code>``.

    Keycloak's group-membership mapper may send full paths (``/project-lung``
    or ``/projects/project-lung``): the last path element is the group name.
    """
    kept = set()
    for g in groups or ():
        if not isinstance(g, str):
            continue
        name = g.rstrip("/").rsplit("/", 1)[-1].strip()
        if name in ROLES or (name.startswith(PROJECT_PREFIX) and _PROJECT_RE.match(name)):
            kept.add(name)
    return sorted(kept)


def has_role(groups) -> bool:
    return any(g in ROLES for g in groups or ())


NO_ROLE_MESSAGE = (
    "Your account has no insitu role (researchers, data-managers, dac, auditors "
    "or admins). Ask an administrator to add you to one."
)


class UsersFile:
    """The YAML file of local accounts, re-read when its mtime or size changes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stamp = None
        self._users: dict[str, dict] = {}
        self._lock = threading.Lock()

    def users(self) -> dict[str, dict]:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._users = None, {}
                return {}
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._users = parse_users(self.path.read_text())
                self._stamp = stamp
            return self._users

    def get(self, name: str) -> dict | None:
        return self.users().get(name)


def parse_users(text: str) -> dict[str, dict]:
    """Parse and check the users file; raises ``ValueError`` with the reason."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict):
        raise ValueError("users file: expected a mapping 'users: {name: {...}}'")
    users = {}
    for name, entry in (data.get("users") or {}).items():
        if not isinstance(name, str) or not _USERNAME_RE.match(name):
            raise ValueError(f"users file: invalid user name {name!r}")
        if not isinstance(entry, dict) or not isinstance(entry.get("password_hash"), str):
            raise ValueError(f"users file: {name}: password_hash is missing")
        if not entry["password_hash"].startswith("$argon2"):
            raise ValueError(f"users file: {name}: password_hash must be an argon2 hash")
        groups = entry.get("groups") or []
        if not isinstance(groups, list):
            raise ValueError(f"users file: {name}: groups must be a list")
        users[name] = {"password_hash": entry["password_hash"], "groups": insitu_groups(groups)}
    return users


def write_users_file(path: str | os.PathLike, accounts: dict[str, tuple[str, list[str]]]) -> None:
    """Write ``{name: (password, groups)}`` as a users file (mode 0600)."""
    body = {"users": {n: {"password_hash": hash_password(pw), "groups": list(gs)} for n, (pw, gs) in accounts.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# insitu local accounts: argon2id password hashes and groups\n")
        yaml.safe_dump(body, fh, sort_keys=True)
    os.replace(tmp, path)


class LocalAccountsAuthenticator(Authenticator):
    """Local accounts with argon2 password hashes and groups from a YAML file."""

    users_file = Unicode(
        config=True,
        help="""Path of the YAML users file (see hub.auth). Read again when it
        changes; accounts removed from it can no longer log in, and their groups
        are withdrawn at the next refresh.""",
    )

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_refresh_age")
    def _refresh_age_default(self):
        return 60

    @default("any_allow_config")
    def _any_allow_default(self):
        return True  # the users file is the allow list

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._file = None

    @property
    def accounts(self) -> UsersFile:
        if self._file is None or str(self._file.path) != self.users_file:
            self._file = UsersFile(self.users_file)
        return self._file

    def _model(self, name: str, entry: dict) -> dict:
        groups = entry["groups"]
        return {"name": name, "groups": groups, "admin": "admins" in groups}

    async def authenticate(self, handler, data):
        name = self.normalize_username((data or {}).get("username", ""))
        password = (data or {}).get("password", "")
        entry = self.accounts.get(name)
        ok = verify_password(entry["password_hash"] if entry else _DUMMY_HASH, password)
        if not (entry and ok):
            self.log.warning("local login failed for %r", name)
            return None
        if not has_role(entry["groups"]):
            self.log.warning("login refused for %s: no role group", name)
            raise web.HTTPError(403, NO_ROLE_MESSAGE)
        return self._model(name, entry)

    async def check_allowed(self, username, authentication=None):
        entry = self.accounts.get(username)
        return bool(entry) and has_role(entry["groups"])

    async def refresh_user(self, user, handler=None, **kwargs):
        entry = self.accounts.get(user.name)
        if not entry or not has_role(entry["groups"]):
            return False  # forces a new login, which is then refused
        return self._model(user.name, entry)


class KeycloakAuthenticator(GenericOAuthenticator):
    """OpenID Connect login through Keycloak (authorization code + PKCE).

    Groups come from the ``groups`` claim of the userinfo answer (Keycloak's
    "Group Membership" mapper, with or without full path) and become hub groups;
    only insitu groups are kept. Login needs one role group; ``admins`` are hub
    admins.
    """

    keycloak_url = Unicode(
        config=True,
        help="Base URL of Keycloak (e.g. https://keycloak.example.org); sets the OIDC endpoint defaults.",
    )

    @default("keycloak_url")
    def _kc_url_default(self):
        return os.environ.get("KEYCLOAK_URL", "")

    realm = Unicode(config=True, help="Keycloak realm of the insitu users.")

    @default("realm")
    def _realm_default(self):
        return os.environ.get("KEYCLOAK_REALM", "insitu")

    groups_claim = Unicode(
        "groups",
        config=True,
        help="Claim of the userinfo answer that lists the user's groups.",
    )

    require_role_group = Bool(
        True,
        config=True,
        help="Refuse users without one of the insitu role groups (always on in production).",
    )

    def _realm_url(self, suffix: str) -> str:
        if not self.keycloak_url:
            return ""
        return f"{self.keycloak_url.rstrip('/')}/realms/{self.realm}/protocol/openid-connect/{suffix}"

    @default("authorize_url")
    def _authorize_url_default(self):
        return os.environ.get("OAUTH2_AUTHORIZE_URL") or self._realm_url("auth")

    @default("token_url")
    def _token_url_default(self):
        return os.environ.get("OAUTH2_TOKEN_URL") or self._realm_url("token")

    @default("userdata_url")
    def _userdata_url_default(self):
        return os.environ.get("OAUTH2_USERDATA_URL") or self._realm_url("userinfo")

    @default("logout_redirect_url")
    def _logout_default(self):
        return self._realm_url("logout")

    @default("login_service")
    def _login_service_default(self):
        return "Keycloak"

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email"]

    @default("enable_pkce")
    def _pkce_default(self):
        return True

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_state_groups_key")
    def _groups_key_default(self):
        return self._groups_from_auth_state

    @default("allowed_groups")
    def _allowed_groups_default(self):
        return set(ROLES)

    @default("admin_groups")
    def _admin_groups_default(self):
        return {"admins"}

    async def get_token_info(self, handler, params):
        """Exchange the code; a code the provider refuses is a 403, not a 500."""
        try:
            return await super().get_token_info(handler, params)
        except HTTPClientError as e:
            if e.code is not None and 400 <= e.code < 500:
                self.log.warning("token exchange refused by the identity provider: HTTP %s", e.code)
                raise web.HTTPError(403, "The identity provider refused the authorization code.") from None
            raise

    def _groups_from_auth_state(self, auth_state: dict) -> list[str]:
        user_info = auth_state.get(self.user_auth_state_key) or {}
        return insitu_groups(user_info.get(self.groups_claim) or [])

    async def check_allowed(self, username, auth_model):
        if auth_model is None:
            return True
        if self.require_role_group and not has_role(auth_model.get("groups")):
            self.log.warning("login refused for %s: no role group", username)
            raise web.HTTPError(403, NO_ROLE_MESSAGE)
        return await super().check_allowed(username, auth_model)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["hash"]:
        print("usage: python -m hub.auth hash  < password", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
