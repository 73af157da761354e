"""Data Management: hubs, projects and top folders, in APS's JSON:API shape.

Every call needs an access token with ``data:read``; each user sees only the
hubs listing them as a member.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, request

from aps.sandbox.bearer import Bearer
from aps.sandbox.data import Folder, Hub, Project, User, World

MAX_PAGE = 200

HUB_TYPES = {
    "personal": "hubs:autodesk.a360:PersonalHub",
    "team": "hubs:autodesk.core:Hub",
    "acc": "hubs:autodesk.bim360:Account",
    "bim360": "hubs:autodesk.bim360:Account",
}


def register(app: Flask, world: World, bearer: Bearer) -> None:
    """Add the Data Management routes to ``app``."""

    @app.get("/project/v1/hubs")
    def hubs() -> Response:
        user = bearer.user("data:read")
        body = _document([_hub(hub) for hub in world.hubs_of(user)])
        warnings = [_warning(region) for region in world.warning_regions]
        if warnings:
            body["meta"] = {"warnings": warnings}
        return jsonify(body)

    @app.get("/project/v1/hubs/<hub_id>")
    def hub(hub_id: str) -> Response:
        found = _find_hub(world, bearer.user("data:read"), hub_id)
        return jsonify(_document(_hub(found)))

    @app.get("/project/v1/hubs/<hub_id>/projects")
    def projects(hub_id: str) -> Response:
        found = _find_hub(world, bearer.user("data:read"), hub_id)
        number, limit = _page()
        chosen = found.projects[number * limit : (number + 1) * limit]
        body = _document([_project(found, project) for project in chosen])
        if (number + 1) * limit < len(found.projects):
            body["links"]["next"] = {"href": _page_url(number + 1, limit)}
        if number > 0:
            body["links"]["prev"] = {"href": _page_url(number - 1, limit)}
        return jsonify(body)

    @app.get("/project/v1/hubs/<hub_id>/projects/<project_id>/topFolders")
    def top_folders(hub_id: str, project_id: str) -> Response:
        found = _find_hub(world, bearer.user("data:read"), hub_id)
        project = next((p for p in found.projects if p.id == project_id), None)
        if project is None:
            _fail(404, "NOT_FOUND", f"The hub has no project {project_id}.")
        folders = [_folder(found, project, folder) for folder in project.top_folders]
        return jsonify(_document(folders))


def _find_hub(world: World, user: User, hub_id: str) -> Hub:
    found = next((hub for hub in world.hubs if hub.id == hub_id), None)
    if found is None:
        _fail(404, "NOT_FOUND", f"There is no hub {hub_id}.")
    if user.email not in found.members:
        _fail(403, "FORBIDDEN", "You don't have permission to access this hub.")
    return found


def _fail(status: int, code: str, detail: str) -> NoReturn:
    error = {"status": str(status), "code": code, "title": detail, "detail": detail}
    body = json.dumps({"jsonapi": {"version": "1.0"}, "errors": [error]})
    abort(Response(body, status=status, mimetype="application/vnd.api+json"))


def _page() -> tuple[int, int]:
    try:
        number = int(request.args.get("page[number]", 0))
        limit = int(request.args.get("page[limit]", MAX_PAGE))
    except ValueError:
        _fail(400, "BAD_INPUT", "page[number] and page[limit] must be whole numbers.")
    if number < 0 or limit < 1:
        _fail(
            400, "BAD_INPUT", "page[number] must be 0 or more, page[limit] 1 or more."
        )
    return number, min(limit, MAX_PAGE)


def _page_url(number: int, limit: int) -> str:
    query = urlencode({"page[number]": number, "page[limit]": limit})
    return f"{request.base_url}?{query}"


def _base() -> str:
    return request.host_url.rstrip("/")


def _document(data: Any) -> dict[str, Any]:
    return {
        "jsonapi": {"version": "1.0"},
        "links": {"self": {"href": request.url}},
        "data": data,
    }


def _extension(kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "version": "1.0",
        "schema": {"href": f"{_base()}/schema/v1/versions/{kind}-1.0"},
        "data": {},
    }


def _hub(hub: Hub) -> dict[str, Any]:
    href = f"{_base()}/project/v1/hubs/{hub.id}"
    return {
        "type": "hubs",
        "id": hub.id,
        "attributes": {
            "name": hub.name,
            "region": hub.region,
            "extension": _extension(HUB_TYPES[hub.kind]),
        },
        "links": {"self": {"href": href}},
        "relationships": {
            "projects": {"links": {"related": {"href": f"{href}/projects"}}}
        },
    }


def _project(hub: Hub, project: Project) -> dict[str, Any]:
    hub_href = f"{_base()}/project/v1/hubs/{hub.id}"
    href = f"{hub_href}/projects/{project.id}"
    kind = "bim360" if hub.on_bim360 else "core"
    extension = _extension(f"projects:autodesk.{kind}:Project")
    if hub.on_bim360:
        extension["data"] = {"projectType": "ACC" if hub.kind == "acc" else "BIM360"}
    return {
        "type": "projects",
        "id": project.id,
        "attributes": {
            "name": project.name,
            "scopes": ["global"],
            "extension": extension,
        },
        "links": {"self": {"href": href}},
        "relationships": {
            "hub": {
                "data": {"type": "hubs", "id": hub.id},
                "links": {"related": {"href": hub_href}},
            },
            "topFolders": {"links": {"related": {"href": f"{href}/topFolders"}}},
        },
    }


def _folder(hub: Hub, project: Project, folder: Folder) -> dict[str, Any]:
    kind = "bim360" if hub.on_bim360 else "core"
    return {
        "type": "folders",
        "id": folder.id,
        "attributes": {
            "name": folder.name,
            "displayName": folder.name,
            "objectCount": 0,
            "hidden": False,
            "extension": _extension(f"folders:autodesk.{kind}:Folder"),
        },
        "links": {
            "self": {
                "href": f"{_base()}/data/v1/projects/{project.id}/folders/{folder.id}"
            }
        },
    }


def _warning(region: str) -> dict[str, Any]:
    return {
        "Id": None,
        "HttpStatusCode": "403",
        "ErrorCode": "BIM360DM_ERROR",
        "Title": f"Unable to get hubs from BIM360DM {region}.",
        "Detail": "You don't have permission to access this API",
        "AboutLink": None,
        "Source": [],
        "meta": [],
    }
