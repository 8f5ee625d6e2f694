import pytest

from bot.settings import Settings, SettingsError


def test_defaults_are_embedded(tmp_path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'rapport.db'}"
    assert settings.tracker_database_url == f"sqlite:///{tmp_path / 'conversations.db'}"
    assert settings.redis_url is None
    assert (settings.rasa_port, settings.actions_port, settings.web_port) == (5005, 5055, 8000)
    assert settings.action_endpoint_url == "http://localhost:5055/webhook"


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://u@db/shop", "REDIS_URL": "redis://cache:6379/2", "ACTIONS_PORT": "6055"}
    )
    assert settings.database_url == "postgresql://u@db/shop"
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.action_endpoint_url == "http://localhost:6055/webhook"


@pytest.mark.parametrize("name, value", [("RASA_PORT", "abc"), ("ACTIONS_PORT", "70000"), ("MAX_MESSAGE_CHARS", "0"), ("LOG_FORMAT", "xml"),
                                         ("NOTICE_DELIVERY_SECONDS", "3601")])
def test_bad_values_name_the_variable(name, value) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_secrets_are_not_in_the_repr() -> None:
    settings = Settings.from_env({
        "REST_CHANNEL_TOKEN": "s3cret-token",
        "DATABASE_URL": "postgresql://shop:db-pass@db/shop",
        "REDIS_URL": "redis://:redis-pass@cache:6379/0",
    })
    for secret in ("s3cret-token", "db-pass", "redis-pass"):
        assert secret not in repr(settings)


def test_trusted_proxy_hops_default_to_none() -> None:
    assert Settings.from_env({}).trusted_proxy_hops == 0
    assert Settings.from_env({"TRUSTED_PROXY_HOPS": "2"}).trusted_proxy_hops == 2
    assert Settings.from_env({"TRUST_FORWARDED_FOR": "false"}).trusted_proxy_hops == 0


@pytest.mark.parametrize("env", [{"TRUSTED_PROXY_HOPS": "-1"}, {"TRUSTED_PROXY_HOPS": "11"},
                                 {"TRUSTED_PROXY_HOPS": "one"}, {"TRUST_FORWARDED_FOR": "true"}])
def test_bad_proxy_settings_name_the_variable(env) -> None:
    # The old boolean trusted the first X-Forwarded-For entry (the client's own): it is refused, not ignored.
    with pytest.raises(SettingsError, match="TRUSTED_PROXY_HOPS"):
        Settings.from_env(env)
