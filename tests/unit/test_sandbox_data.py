"""The sandbox's data file: the default world and the errors of a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from aps.errors import SettingsError
from aps.sandbox.data import default_file, load, parse
from aps.sandbox.grants import Lifetimes


def test_default_world_has_jane_and_john_and_both_apps() -> None:
    world = load()

    assert {user.name for user in world.users.values()} == {"Jane Doe", "John Smith"}
    assert world.default_client_id == "apshooks-sandbox"
    assert world.apps["apshooks-sandbox"].public
    assert not world.apps["apshooks-web"].public
    assert world.warning_regions == ("EMEA",)


def test_samples_file_is_the_default_file() -> None:
    sample = Path(__file__).parents[2] / "samples" / "sandbox.toml"

    assert sample.read_text(encoding="utf-8") == default_file().read_text(
        encoding="utf-8"
    )


def test_ids_are_stable_and_shaped_like_aps() -> None:
    first, second = load(), load()
    jane = first.user("jane@example.com")

    assert jane.sub == second.user("JANE@example.com").sub
    assert len(jane.sub) == 12
    assert jane.sub.isalnum()
    assert jane.sub.isupper() or jane.sub.isdigit()
    assert [hub.id for hub in first.hubs] == [hub.id for hub in second.hubs]
    prefixes = {hub.name: hub.id[:2] for hub in first.hubs_of(jane)}
    assert prefixes == {
        "Jane's Hub": "a.",
        "John's Hub": "a.",
        "build_JohnsCompany": "b.",
    }


def test_a_sub_in_the_file_wins() -> None:
    world = parse(
        {
            "users": [{"email": "a@example.com", "name": "A", "sub": "FIXED123"}],
            "apps": [{"client_id": "x"}],
        }
    )

    assert world.user("a@example.com").sub == "FIXED123"


def test_extra_callbacks_are_added_to_every_app() -> None:
    world = load().with_callbacks(("http://127.0.0.1:1234/",))

    assert all(
        app.callback_urls[-1] == "http://127.0.0.1:1234/" for app in world.apps.values()
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("users = []\napps = []", "no app"),
        (
            'users = []\n[[apps]]\nclient_id = "x"\n[[hubs]]\nname = "H"\nkind = "x"',
            "kind",
        ),
        (
            'users = []\n[[apps]]\nclient_id = "x"\n[[hubs]]\nname = "H"\n'
            'members = ["nobody@example.com"]',
            "unknown users",
        ),
        ('warning_regions = ["MARS"]\nusers = []\n[[apps]]\nclient_id = "x"', "region"),
        ("users = [", "not valid TOML"),
    ],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(SettingsError, match=reason):
        load(path)


def test_unknown_user_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"jane@example\.com"):
        load().user("nobody@example.com")


def test_expires_in_is_one_second_short_as_aps_answers() -> None:
    assert Lifetimes().expires_in == 3599
    assert Lifetimes(access=1.0).expires_in == 1
