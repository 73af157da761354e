"""Where apshooks finds its settings: ``apshooks.toml`` files and the environment.

The file in the current folder is read first, then the one in the user config
folder fills what it left out; environment variables win over both. With the
endpoint URLs set, the same code talks to APS, the offline sandbox, or any
standards-conformant OAuth 2.0 / OpenID Connect server.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from aps.errors import SettingsError

APS_BASE_URL = "https://developer.api.autodesk.com"
APS_USERINFO_URL = "https://api.userprofile.autodesk.com/userinfo"
DEFAULT_CALLBACK_URL = "http://localhost:8080/"
DEFAULT_SCOPES = (
    "data:read", "data:write", "data:create", "data:search", "viewables:read",
    "bucket:create", "bucket:read", "bucket:update", "bucket:delete",
    "user-profile:read", "user:read", "user:write", "account:read",
    "account:write", "code:all", "openid",
)

# Setting name -> environment variable. Every setting can also be written in
# apshooks.toml under its own name.
ENVIRONMENT = {
    "client_id": "APS_CLIENT_ID",
    "client_secret": "APS_CLIENT_SECRET",
    "callback_url": "APS_CALLBACK_URL",
    "scopes": "APS_SCOPES",
    "base_url": "APS_BASE_URL",
    "authorize_url": "APS_AUTHORIZE_URL",
    "token_url": "APS_TOKEN_URL",
    "userinfo_url": "APS_USERINFO_URL",
    "revoke_url": "APS_REVOKE_URL",
    "keys_url": "APS_KEYS_URL",
    "issuer": "APS_ISSUER",
    "store": "APSHOOKS_STORE",
    "secret_key": "APSHOOKS_SECRET_KEY",
    "log_level": "APSHOOKS_LOG_LEVEL",
    "log_dir": "APSHOOKS_LOG_DIR",
    "customizations": "APSHOOKS_CUSTOMIZATIONS",
    "jobs": "APSHOOKS_JOBS",
    "impersonate": "APSHOOKS_IMPERSONATE",
}

def home() -> Path | None:
    """``APSHOOKS_HOME``, when set: one folder for data, logs and config."""
    value = os.environ.get("APSHOOKS_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    return home() or Path(platformdirs.user_data_dir("apshooks", appauthor=False))


def config_dir() -> Path:
    return home() or Path(platformdirs.user_config_dir("apshooks", appauthor=False))


def _split(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.replace(",", " ").split())
    return tuple(value)


@attrs.frozen(kw_only=True)
class Settings:
    """Everything apshooks needs to know, resolved once.

    Build one with :meth:`load`; pass keyword arguments to override single values.
    """

    client_id: str | None = None
    client_secret: str | None = attrs.field(default=None, repr=False)
    callback_url: str = DEFAULT_CALLBACK_URL
    scopes: tuple[str, ...] = attrs.field(default=DEFAULT_SCOPES, converter=_split)
    base_url: str = APS_BASE_URL
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    revoke_url: str | None = None
    keys_url: str | None = None
    issuer: str | None = None
    store: str | None = attrs.field(default=None, repr=False)  # May hold a password.
    secret_key: str | None = attrs.field(default=None, repr=False)
    log_level: str = "INFO"
    log_dir: str | None = None
    customizations: str | None = None
    jobs: str | None = None
    impersonate: tuple[str, ...] = attrs.field(default=(), converter=_split)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the files and the environment; ``overrides`` win over both."""
        values: dict[str, Any] = {}
        for folder in (config_dir(), Path.cwd()):
            values.update(_read_file(folder / "apshooks.toml"))

        for name, variable in ENVIRONMENT.items():
            if os.environ.get(variable):
                values[name] = os.environ[variable]

        values.update({k: v for k, v in overrides.items() if v is not None})
        _check(values)
        return cls(**values)

    # The endpoints default to APS's own, derived from the base URL.

    @property
    def authorization_endpoint(self) -> str:
        return self.authorize_url or f"{self._base}/authentication/v2/authorize"

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self._base}/authentication/v2/token"

    @property
    def revocation_endpoint(self) -> str:
        return self.revoke_url or f"{self._base}/authentication/v2/revoke"

    @property
    def keys_endpoint(self) -> str:
        """The JWKS that signs ID tokens."""
        return self.keys_url or f"{self._base}/authentication/v2/keys"

    @property
    def id_token_issuer(self) -> str | None:
        """Who must have issued the ID token, when that is known.

        With derived endpoints the server is laid out as APS is, and its issuer
        is the base URL; a server named endpoint by endpoint says it with
        ``APS_ISSUER``, or the issuer goes unchecked.
        """
        return self.issuer or (None if self.keys_url else self._base)

    @property
    def userinfo_endpoint(self) -> str:
        if self.userinfo_url:
            return self.userinfo_url
        if self._base == APS_BASE_URL:
            return APS_USERINFO_URL
        return f"{self._base}/userinfo"

    @property
    def _base(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def store_url(self) -> str:
        """The store as a URL: ``sqlite:///path`` or ``postgresql://...``."""
        if not self.store:
            return f"sqlite:///{data_dir() / 'apshooks.db'}"
        if "://" in self.store:
            return self.store
        return f"sqlite:///{Path(self.store).expanduser().resolve()}"

    @property
    def log_folder(self) -> Path:
        if self.log_dir:
            return Path(self.log_dir).expanduser()
        if home():
            return data_dir() / "logs"
        return Path(platformdirs.user_log_dir("apshooks", appauthor=False))

    @property
    def customizations_folder(self) -> Path:
        return _folder(self.customizations, "customizations")

    @property
    def jobs_folder(self) -> Path:
        return _folder(self.jobs, "jobs")



_LISTS = frozenset({"scopes", "impersonate"})
_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def _check(values: Mapping[str, Any]) -> None:
    """Refuse unknown names and values of the wrong kind, naming the setting."""
    unknown = sorted(set(values) - set(ENVIRONMENT))
    if unknown:
        raise SettingsError(
            f"Unknown setting {', '.join(map(repr, unknown))}. "
            f"Known settings are: {', '.join(ENVIRONMENT)}."
        )
    for name, value in values.items():
        words = isinstance(value, list | tuple) and all(
            isinstance(word, str) for word in value
        )
        if not isinstance(value, str) and not (name in _LISTS and words):
            kind = "text or a list of text" if name in _LISTS else "text"
            raise SettingsError(
                f"The setting {name!r} must be {kind}, not {value!r}. Fix it in "
                f"apshooks.toml or {ENVIRONMENT[name]}."
            )
    level = str(values.get("log_level", "INFO")).upper()
    if level not in _LEVELS:
        raise SettingsError(
            f"The log level {values['log_level']!r} is unknown. Use one of "
            f"{', '.join(_LEVELS)} (APSHOOKS_LOG_LEVEL)."
        )


def _folder(value: str | None, default: str) -> Path:
    return Path(value).expanduser() if value else data_dir() / default


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML ({error}). Fix it.") from None
