import pytest

from kobe_pipelines.errors import ConfigError
from kobe_pipelines.execution.alpaca_settings import AlpacaSettings

KEYS = {"ALPACA_API_KEY": "PKKEY", "ALPACA_SECRET_KEY": "SECRET"}


def test_from_env_when_only_keys_then_paper_with_documented_defaults():
    s = AlpacaSettings.from_env(KEYS)
    assert (s.paper, s.base_url, s.timeout_s, s.retry_attempts) == (True, None, 10.0, 3)


@pytest.mark.parametrize("missing", ["ALPACA_API_KEY", "ALPACA_SECRET_KEY"])
def test_from_env_when_a_key_missing_then_config_error_naming_it(missing):
    env = {k: v for k, v in KEYS.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        AlpacaSettings.from_env(env)


def test_from_env_when_paper_false_without_live_trading_then_refuses():
    with pytest.raises(ConfigError, match="KOBE_ALPACA_PAPER.*refusing to trade live"):
        AlpacaSettings.from_env({**KEYS, "KOBE_ALPACA_PAPER": "false"})


def test_from_env_when_live_trading_without_paper_false_then_refuses():
    with pytest.raises(ConfigError, match="KOBE_LIVE_TRADING"):
        AlpacaSettings.from_env({**KEYS, "KOBE_LIVE_TRADING": "true"})


def test_from_env_when_both_live_switches_then_live():
    assert not AlpacaSettings.from_env({**KEYS, "KOBE_ALPACA_PAPER": "false", "KOBE_LIVE_TRADING": "true"}).paper


def test_from_env_when_base_url_is_the_live_host_on_paper_then_refuses():
    with pytest.raises(ConfigError, match="KOBE_ALPACA_BASE_URL"):
        AlpacaSettings.from_env({**KEYS, "KOBE_ALPACA_BASE_URL": "https://api.alpaca.markets"})


@pytest.mark.parametrize(("name", "value"), [("KOBE_ALPACA_TIMEOUT_S", "soon"), ("KOBE_ALPACA_TIMEOUT_S", "0"),
                                             ("KOBE_ALPACA_RETRY_ATTEMPTS", "1.5"), ("KOBE_ALPACA_RETRY_WAIT_S", "0"),
                                             ("KOBE_ALPACA_TIME_IN_FORCE", "ioc"), ("KOBE_LIVE_TRADING", "maybe")])
def test_from_env_when_a_setting_is_bad_then_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        AlpacaSettings.from_env({**KEYS, name: value})


def test_settings_when_shown_then_keys_are_not():
    shown = repr(AlpacaSettings.from_env(KEYS))
    assert "PKKEY" not in shown and "SECRET" not in shown
