from __future__ import annotations

import pytest

from kobe_pipelines.alerts import AlertSettings, load_dotenv_if_present
from kobe_pipelines.errors import ConfigError

FULL = {
    "KOBE_SMTP_HOST": "smtp.example.com",
    "KOBE_SMTP_PORT": "2525",
    "KOBE_SMTP_USER": "robot",
    "KOBE_SMTP_PASSWORD": "hunter2-secret",
    "KOBE_ALERT_FROM": "KOBE <robot@example.com>",
    "KOBE_ALERT_TO": "ops@example.com, Risk Desk <risk@example.com>",
    "KOBE_SMTP_STARTTLS": "no",
    "KOBE_SMTP_TIMEOUT": "2.5",
    "KOBE_ALERT_GROUP_SECONDS": "60",
}


def test_from_env_when_nothing_set_then_log_only_with_documented_defaults():
    settings = AlertSettings.from_env({})

    assert settings.email_enabled is False
    assert (settings.smtp_port, settings.starttls, settings.timeout_seconds, settings.group_seconds) == (
        587, True, 10.0, 300.0)


def test_from_env_when_every_variable_set_then_each_parsed():
    settings = AlertSettings.from_env(FULL)

    assert settings.email_enabled is True
    assert settings.smtp_host == "smtp.example.com"
    assert settings.smtp_port == 2525
    assert settings.smtp_user == "robot" and settings.smtp_password == "hunter2-secret"
    assert settings.alert_from == "KOBE <robot@example.com>"
    assert settings.sender_address == "robot@example.com"
    assert settings.alert_to == ("ops@example.com", "risk@example.com")
    assert settings.starttls is False
    assert settings.timeout_seconds == 2.5 and settings.group_seconds == 60.0


def test_from_env_when_environ_not_given_then_reads_os_environ_at_call_time(monkeypatch):
    monkeypatch.setenv("KOBE_ALERT_GROUP_SECONDS", "42")

    assert AlertSettings.from_env().group_seconds == 42.0


@pytest.mark.parametrize(("name", "value"), [
    ("KOBE_SMTP_PORT", "smtp"),
    ("KOBE_SMTP_PORT", "70000"),
    ("KOBE_SMTP_STARTTLS", "maybe"),
    ("KOBE_SMTP_TIMEOUT", "0"),
    ("KOBE_SMTP_TIMEOUT", "ten"),
    ("KOBE_ALERT_GROUP_SECONDS", "-1"),
    ("KOBE_ALERT_GROUP_SECONDS", "nan"),
    ("KOBE_ALERT_FROM", "not-an-address"),
    ("KOBE_ALERT_TO", "ops@example.com, nobody"),
    ("KOBE_SMTP_CAFILE", "/nonexistent/ca.pem"),
])
def test_from_env_when_value_invalid_then_config_error_names_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        AlertSettings.from_env({**FULL, name: value})

    assert caught.value.setting == name


@pytest.mark.parametrize(("missing", "named"), [
    ("KOBE_ALERT_FROM", "KOBE_ALERT_FROM"),
    ("KOBE_ALERT_TO", "KOBE_ALERT_TO"),
    ("KOBE_SMTP_PASSWORD", "KOBE_SMTP_PASSWORD"),  # a user without a password
    ("KOBE_SMTP_USER", "KOBE_SMTP_USER"),  # a password without a user
])
def test_from_env_when_host_set_and_companion_missing_then_config_error_names_it(missing, named):
    environ = {k: v for k, v in FULL.items() if k != missing}

    with pytest.raises(ConfigError) as caught:
        AlertSettings.from_env(environ)

    assert caught.value.setting == named


def test_repr_and_describe_when_password_set_then_password_absent():
    settings = AlertSettings.from_env(FULL)

    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.describe())
    assert settings.describe()["smtp_password"] == "***"


def test_load_dotenv_when_file_present_then_fills_missing_variables_without_overriding(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "# SMTP for alerts\nKOBE_SMTP_HOST=smtp.from-dotenv.test\nKOBE_SMTP_PORT=2525\n"
        "KOBE_ALERT_TO=ops@example.com\n")
    monkeypatch.chdir(tmp_path)
    environ = {"KOBE_SMTP_PORT": "465"}

    found = load_dotenv_if_present(environ=environ)

    assert found == tmp_path / ".env"
    assert environ == {"KOBE_SMTP_HOST": "smtp.from-dotenv.test", "KOBE_SMTP_PORT": "465",  # real var wins
                       "KOBE_ALERT_TO": "ops@example.com"}


def test_load_dotenv_when_no_file_then_returns_none_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}

    assert load_dotenv_if_present(environ=environ) is None
    assert environ == {}


def test_settings_when_alert_to_given_as_one_string_then_config_error_names_it():
    # A bare string would otherwise be iterated character by character.
    with pytest.raises(ConfigError) as caught:
        AlertSettings(smtp_host="smtp.example.com", alert_from="a@example.com", alert_to="ops@example.com")

    assert caught.value.setting == "KOBE_ALERT_TO"
