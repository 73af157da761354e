"""Settings: files, environment, and the endpoints derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from aps.errors import SettingsError
from aps.settings import Settings


def test_aps_endpoints_are_the_default() -> None:
    settings = Settings.load()
    assert settings.token_endpoint == (
        "https://developer.api.autodesk.com/authentication/v2/token"
    )
    assert settings.userinfo_endpoint == "https://api.userprofile.autodesk.com/userinfo"
    assert settings.callback_url == "http://localhost:8080/"
    assert "openid" in settings.scopes


def test_a_base_url_moves_every_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APS_BASE_URL", "http://127.0.0.1:9000")
    settings = Settings.load()
    assert settings.authorization_endpoint == (
        "http://127.0.0.1:9000/authentication/v2/authorize"
    )
    assert settings.revocation_endpoint.startswith("http://127.0.0.1:9000/")
    assert settings.userinfo_endpoint == "http://127.0.0.1:9000/userinfo"


def test_explicit_endpoints_for_any_oidc_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APS_TOKEN_URL", "https://idp.example/oauth2/token")
    monkeypatch.setenv("APS_AUTHORIZE_URL", "https://idp.example/oauth2/auth")
    settings = Settings.load()
    assert settings.token_endpoint == "https://idp.example/oauth2/token"
    assert settings.authorization_endpoint == "https://idp.example/oauth2/auth"


def test_environment_wins_over_the_file_and_the_folder_file_over_config(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (home / "apshooks.toml").write_text(
        'client_id = "from-config"\nlog_level = "DEBUG"\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "apshooks.toml").write_text(
        'client_id = "from-folder"\nscopes = ["data:read"]\n'
    )
    monkeypatch.chdir(work)

    assert Settings.load().client_id == "from-folder"
    assert Settings.load().log_level == "DEBUG"
    assert Settings.load().scopes == ("data:read",)
    monkeypatch.setenv("APS_CLIENT_ID", "from-env")
    assert Settings.load().client_id == "from-env"
    assert Settings.load(client_id="given").client_id == "given"


def test_unknown_and_broken_settings_are_named(home: Path) -> None:
    (home / "apshooks.toml").write_text('clientid = "x"\n')
    with pytest.raises(SettingsError, match="'clientid'"):
        Settings.load()
    (home / "apshooks.toml").write_text("client_id = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load()


def test_secrets_are_left_out_of_repr() -> None:
    settings = Settings(
        client_id="a",
        client_secret="hush",
        secret_key="k3y",
        store="postgresql://bob:hunter2@db/apshooks",
    )
    for secret in ("hush", "k3y", "hunter2"):
        assert secret not in repr(settings)


def test_values_of_the_wrong_kind_are_named(home: Path) -> None:
    (home / "apshooks.toml").write_text("scopes = 5\n")
    with pytest.raises(SettingsError, match="'scopes' must be text or a list"):
        Settings.load()
    (home / "apshooks.toml").write_text('log_level = "verbose"\n')
    with pytest.raises(SettingsError, match="log level 'verbose' is unknown"):
        Settings.load()
