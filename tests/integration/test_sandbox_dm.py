"""The sandbox's hubs and projects, over real loopback HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sandbox_client import bearer, tokens_for

from aps.sandbox import Sandbox

HUBS = "/project/v1/hubs"


def as_user(http: httpx.Client, user: str, scope: str = "data:read") -> dict[str, str]:
    return bearer(tokens_for(http, user, scope=scope)["access_token"])


def hubs_by_name(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    return {
        hub["attributes"]["name"]: hub
        for hub in http.get(HUBS, headers=headers).json()["data"]
    }


def test_jane_sees_her_three_hubs_as_aps_describes_them(http: httpx.Client) -> None:
    hubs = hubs_by_name(http, as_user(http, "jane@example.com"))

    assert set(hubs) == {"Jane's Hub", "John's Hub", "build_JohnsCompany"}
    kinds = {
        name: (hub["id"][:2], hub["attributes"]["extension"]["type"])
        for name, hub in hubs.items()
    }
    assert kinds == {
        "Jane's Hub": ("a.", "hubs:autodesk.a360:PersonalHub"),
        "John's Hub": ("a.", "hubs:autodesk.core:Hub"),
        "build_JohnsCompany": ("b.", "hubs:autodesk.bim360:Account"),
    }
    assert {hub["attributes"]["region"] for hub in hubs.values()} == {"US"}


def test_hub_list_carries_the_emea_warning(http: httpx.Client) -> None:
    body = http.get(HUBS, headers=as_user(http, "jane@example.com")).json()

    [warning] = body["meta"]["warnings"]
    assert warning["ErrorCode"] == "BIM360DM_ERROR"
    assert warning["HttpStatusCode"] == "403"
    assert warning["Title"] == "Unable to get hubs from BIM360DM EMEA."


def test_each_user_sees_only_their_own_hubs(http: httpx.Client) -> None:
    jane = hubs_by_name(http, as_user(http, "jane@example.com"))
    john_headers = as_user(http, "john@example.com")
    john = hubs_by_name(http, john_headers)

    assert "Jane's Hub" not in john
    assert "John's Personal Hub" in john
    janes_hub = jane["Jane's Hub"]["id"]
    answer = http.get(f"{HUBS}/{janes_hub}", headers=john_headers)
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["status"] == "403"


def test_one_hub_and_its_projects_and_top_folders(http: httpx.Client) -> None:
    headers = as_user(http, "jane@example.com")
    acc = hubs_by_name(http, headers)["build_JohnsCompany"]

    hub = http.get(f"{HUBS}/{acc['id']}", headers=headers).json()["data"]
    projects = http.get(f"{HUBS}/{acc['id']}/projects", headers=headers).json()
    first = projects["data"][0]
    folders = http.get(
        first["relationships"]["topFolders"]["links"]["related"]["href"],
        headers=headers,
    ).json()

    assert hub["attributes"]["name"] == "build_JohnsCompany"
    assert len(projects["data"]) == 4
    assert "next" not in projects["links"]
    assert all(project["id"].startswith("b.") for project in projects["data"])
    assert [f["attributes"]["name"] for f in folders["data"]] == [
        "Project Files",
        "Plans",
    ]


def test_unknown_hub_is_a_404(http: httpx.Client) -> None:
    answer = http.get(
        f"{HUBS}/b.no-such-hub", headers=as_user(http, "jane@example.com")
    )

    assert answer.status_code == 404


def write_big_hub(folder: Path, projects: int) -> Path:
    names = ", ".join(f'{{ name = "Project {n:03}" }}' for n in range(projects))
    path = folder / "big.toml"
    lines = [
        "[[users]]",
        'email = "ann@example.com"',
        'name = "Ann Example"',
        "[[apps]]",
        'client_id = "apshooks-sandbox"',
        'callback_urls = ["http://localhost:8080/"]',
        "[[hubs]]",
        'name = "Big"',
        'kind = "acc"',
        'members = ["ann@example.com"]',
        f"projects = [{names}]",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_projects_are_paged_with_absolute_next_links(tmp_path: Path) -> None:
    with (
        Sandbox.start(data=write_big_hub(tmp_path, 5)) as sandbox,
        httpx.Client() as http,
    ):
        headers = bearer(
            sandbox.consent("ann@example.com", scopes=["data:read"])["access_token"]
        )
        hub_id = http.get(f"{sandbox.url}{HUBS}", headers=headers).json()["data"][0][
            "id"
        ]

        url: str | None = f"{sandbox.url}{HUBS}/{hub_id}/projects?page[limit]=2"
        pages: list[list[str]] = []
        while url:
            body = http.get(url, headers=headers).json()
            pages.append([project["attributes"]["name"] for project in body["data"]])
            url = body["links"].get("next", {}).get("href")
            assert url is None or url.startswith(f"{sandbox.url}/project/v1/")

    assert pages == [
        ["Project 000", "Project 001"],
        ["Project 002", "Project 003"],
        ["Project 004"],
    ]


def test_page_limit_is_at_most_200(tmp_path: Path) -> None:
    with (
        Sandbox.start(data=write_big_hub(tmp_path, 205)) as sandbox,
        httpx.Client() as http,
    ):
        headers = bearer(
            sandbox.consent("ann@example.com", scopes=["data:read"])["access_token"]
        )
        hub_id = http.get(f"{sandbox.url}{HUBS}", headers=headers).json()["data"][0][
            "id"
        ]
        projects = f"{sandbox.url}{HUBS}/{hub_id}/projects"

        first = http.get(projects, params={"page[limit]": 500}, headers=headers).json()
        second = http.get(first["links"]["next"]["href"], headers=headers).json()

    assert len(first["data"]) == 200
    assert len(second["data"]) == 5
    assert "next" not in second["links"]


def test_missing_or_bad_token_is_a_401(http: httpx.Client) -> None:
    missing = http.get(HUBS)
    bad = http.get(HUBS, headers=bearer("not-a-token"))

    assert (missing.status_code, bad.status_code) == (401, 401)
    assert "developerMessage" in missing.json()
    assert "developerMessage" in bad.json()


def test_token_without_data_read_is_a_403(http: httpx.Client) -> None:
    answer = http.get(HUBS, headers=as_user(http, "jane@example.com", scope="openid"))

    assert answer.status_code == 403
    assert "data:read" in answer.json()["developerMessage"]
