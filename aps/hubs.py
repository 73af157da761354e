"""The user's hubs, as Data Management's ``GET /project/v1/hubs`` lists them.

Some regions may fail while others answer: an ACC or BIM 360 account that has
not added the app's Client ID still answers 200, with a ``BIM360DM_ERROR``
warning in ``meta.warnings``. Those warnings become :class:`HubError` entries
beside the hubs, so a caller sees what is missing and why.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs


class HubKind(enum.Enum):
    PERSONAL = "personal"
    TEAM = "team"
    ACC = "ACC/BIM 360"  # Both answer with the same extension type.
    OTHER = "other"


_KINDS = {
    "hubs:autodesk.a360:PersonalHub": HubKind.PERSONAL,
    "hubs:autodesk.core:Hub": HubKind.TEAM,
    "hubs:autodesk.bim360:Account": HubKind.ACC,
}


@attrs.frozen
class Hub:
    id: str
    name: str
    kind: HubKind
    region: str
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Hub:
        attributes = item.get("attributes") or {}
        extension = attributes.get("extension") or {}
        return cls(
            id=str(item["id"]),
            name=str(attributes.get("name", item["id"])),
            kind=_KINDS.get(str(extension.get("type")), HubKind.OTHER),
            region=str(attributes.get("region") or ""),
            raw=item,
        )


@attrs.frozen
class HubError:
    """A region or account whose hubs could not be read."""

    status: int | None
    code: str | None
    title: str | None
    detail: str | None

    @classmethod
    def from_warning(cls, warning: Mapping[str, Any]) -> HubError:
        status = warning.get("HttpStatusCode")
        return cls(
            status=int(status) if status not in (None, "") else None,
            code=warning.get("ErrorCode"),
            title=warning.get("Title"),
            detail=warning.get("Detail"),
        )

    def __str__(self) -> str:
        text = self.title or "Some hubs could not be read."
        return f"{text} {self.detail or ''}".strip() + f" ({self.code}, {self.status})"


class HubNotFound(KeyError):
    """No hub has that name or id. The message lists the ones there are."""

    def __str__(self) -> str:
        return str(self.args[0])


class Hubs(Sequence[Hub]):
    """The hubs, in the order APS listed them; look one up by name or id."""

    def __init__(self, hubs: Sequence[Hub], errors: Sequence[HubError]) -> None:
        self._hubs = tuple(hubs)
        self.errors: tuple[HubError, ...] = tuple(errors)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Hubs:
        warnings = (body.get("meta") or {}).get("warnings") or []
        return cls(
            [Hub.from_json(item) for item in body.get("data") or []],
            [HubError.from_warning(w) for w in warnings],
        )

    def __len__(self) -> int:
        return len(self._hubs)

    def __iter__(self) -> Iterator[Hub]:
        return iter(self._hubs)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | slice):
            return self._hubs[key]
        for hub in self._hubs:
            if key in (hub.name, hub.id):
                return hub
        raise HubNotFound(self._missing(str(key)))

    def __contains__(self, key: object) -> bool:
        return any(key in (hub, hub.name, hub.id) for hub in self._hubs)

    def __repr__(self) -> str:
        return f"Hubs({[hub.name for hub in self._hubs]!r}, errors={len(self.errors)})"

    def _missing(self, key: str) -> str:
        names = [hub.name for hub in self._hubs]
        close = difflib.get_close_matches(key, names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        known = ", ".join(map(repr, names)) or "none"
        errors = " Some regions failed: see hubs.errors." if self.errors else ""
        return f"No hub named {key!r}.{hint} The user's hubs: {known}.{errors}"
