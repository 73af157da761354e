"""The sandbox's world: users, apps, hubs and projects, read from a TOML file.

Ids are derived from names and e-mail addresses, so the same file gives the
same ids on every run and tests can rely on them. The default file ships with
the package (``aps/sandbox/sandbox.toml``); ``samples/sandbox.toml`` points at
it, so there is one copy to edit.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import attrs

from aps.errors import SettingsError

HubKind = Literal["personal", "team", "acc", "bim360"]
KINDS: tuple[HubKind, ...] = ("personal", "team", "acc", "bim360")
REGIONS = ("US", "EMEA", "AUS", "CAN", "DEU", "IND", "JPN", "GBR")

# Fixed namespace so that uuid5 ids stay the same from one run to the next.
_NAMESPACE = uuid.UUID("5f0c3c8e-4d1e-4a57-9a6c-2f4b9d0e7a11")


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def _subject(email: str) -> str:
    # Autodesk IDs are 12 upper-case letters and digits.
    return base64.b32encode(_digest("user", email.lower())).decode()[:12]


@attrs.frozen
class User:
    email: str
    name: str
    sub: str

    @property
    def given_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name

    @property
    def family_name(self) -> str:
        return " ".join(self.name.split()[1:])


@attrs.frozen
class App:
    client_id: str
    name: str
    callback_urls: tuple[str, ...]
    client_secret: str | None = attrs.field(default=None, repr=False)

    @property
    def public(self) -> bool:
        return self.client_secret is None


@attrs.frozen
class Folder:
    id: str
    name: str


@attrs.frozen
class Project:
    id: str
    name: str
    top_folders: tuple[Folder, ...]


@attrs.frozen
class Hub:
    id: str
    name: str
    kind: HubKind
    region: str
    members: frozenset[str]
    projects: tuple[Project, ...]

    @property
    def on_bim360(self) -> bool:
        return self.kind in ("acc", "bim360")


@attrs.frozen
class World:
    """Everything the sandbox serves, looked up by key."""

    users: Mapping[str, User]
    apps: Mapping[str, App]
    hubs: tuple[Hub, ...]
    warning_regions: tuple[str, ...] = ()

    @property
    def default_client_id(self) -> str:
        """The first public app, which the SDK uses unless told otherwise."""
        public = [app for app in self.apps.values() if app.public]
        return (public or list(self.apps.values()))[0].client_id

    def user(self, email: str) -> User:
        try:
            return self.users[email.lower()]
        except KeyError:
            raise SettingsError(
                f"The sandbox has no user {email!r}. Its users are: "
                f"{', '.join(self.users)}."
            ) from None

    def hubs_of(self, user: User) -> list[Hub]:
        return [hub for hub in self.hubs if user.email in hub.members]

    def with_callbacks(self, urls: tuple[str, ...]) -> World:
        """The same world with ``urls`` registered for every app."""
        apps = {
            key: attrs.evolve(app, callback_urls=(*app.callback_urls, *urls))
            for key, app in self.apps.items()
        }
        return attrs.evolve(self, apps=apps)


def default_file() -> Path:
    return Path(str(resources.files("aps.sandbox") / "sandbox.toml"))


def load(path: str | Path | None = None) -> World:
    """Read a data file; ``None`` reads the default one."""
    source = Path(path) if path is not None else default_file()
    try:
        with source.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"The sandbox data file {source} does not exist.") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{source} is not valid TOML ({error}). Fix it.") from None
    try:
        return parse(raw)
    except (KeyError, TypeError, ValueError) as error:
        raise SettingsError(
            f"{source} is not a valid sandbox data file: {error}. "
            "docs/sandbox.md describes the format."
        ) from None


def parse(raw: Mapping[str, Any]) -> World:
    users = {}
    for entry in raw["users"]:
        email = str(entry["email"]).lower()
        users[email] = User(email, entry["name"], entry.get("sub") or _subject(email))

    apps = {}
    for entry in raw["apps"]:
        apps[entry["client_id"]] = App(
            client_id=entry["client_id"],
            name=entry.get("name", entry["client_id"]),
            callback_urls=tuple(entry.get("callback_urls", ())),
            client_secret=entry.get("client_secret"),
        )
    if not apps:
        raise ValueError("it registers no app")

    hubs = tuple(_hub(entry, users) for entry in raw.get("hubs", ()))
    regions = tuple(raw.get("warning_regions", ()))
    for region in regions:
        _check_region(region)
    return World(users, apps, hubs, regions)


def _hub(entry: Mapping[str, Any], users: Mapping[str, User]) -> Hub:
    name = entry["name"]
    kind = entry.get("kind", "team")
    if kind not in KINDS:
        raise ValueError(f"hub {name!r} has kind {kind!r}; use one of {KINDS}")

    members = [entry["owner"]] if "owner" in entry else entry.get("members", [])
    unknown = [email for email in members if email.lower() not in users]
    if unknown:
        raise ValueError(f"hub {name!r} lists unknown users {unknown}")

    hub_id = entry.get("id") or _id("b." if kind in ("acc", "bim360") else "a.", name)
    projects = tuple(
        _project(project, hub_id, kind) for project in entry.get("projects", ())
    )
    return Hub(
        id=hub_id,
        name=name,
        kind=kind,
        region=_check_region(entry.get("region", "US")),
        members=frozenset(email.lower() for email in members),
        projects=projects,
    )


def _project(entry: Mapping[str, Any], hub_id: str, kind: HubKind) -> Project:
    name = entry["name"]
    if kind in ("acc", "bim360"):
        # BIM 360 / ACC project ids are the hub prefix and a UUID.
        project_id = "b." + str(uuid.uuid5(_NAMESPACE, f"{hub_id}/{name}"))
    else:
        project_id = _id("a.", f"{hub_id}/{name}")
    folders = tuple(
        Folder(_folder_id(project_id, folder), folder)
        for folder in entry.get("top_folders", ())
    )
    return Project(entry.get("id") or project_id, name, folders)


def _id(prefix: str, name: str) -> str:
    token = base64.urlsafe_b64encode(_digest("hub", name)[:18]).decode()
    return prefix + token


def _folder_id(project_id: str, name: str) -> str:
    token = base64.urlsafe_b64encode(_digest("folder", project_id, name)[:16])
    return "urn:adsk.wipprod:fs.folder:co." + token.decode().rstrip("=")


def _check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"region {region!r} is not one of {REGIONS}")
    return region
