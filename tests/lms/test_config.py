from pathlib import Path

import pytest

from lms.config import ConfigError, Settings
from lms.domain.media_urls import derived_key

SECRET = "s" * 40


def test_no_configuration_means_the_embedded_single_node_default() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert settings.redis_url is None
    assert settings.seed_demo
    assert settings.port == 8000


def test_every_bad_value_is_reported_at_once_with_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "LMS_PORT": "eighty",
                "LMS_DATABASE_URL": "mysql://db/lms",
                "LMS_REDIS_URL": "http://cache",
                "LMS_LOG_LEVEL": "loud",
                "LMS_DB_POOL_MAX": "0",
            }
        )
    problems = "\n".join(caught.value.problems)
    for name in (
        "LMS_PORT",
        "LMS_DATABASE_URL",
        "LMS_REDIS_URL",
        "LMS_LOG_LEVEL",
        "LMS_DB_POOL_MAX",
    ):
        assert name in problems
    assert len(caught.value.problems) == 5


def test_production_database_requires_a_long_secret_key_and_never_echoes_it() -> None:
    with pytest.raises(ConfigError, match="LMS_SECRET_KEY is not set"):
        Settings.from_env({"LMS_DATABASE_URL": "postgresql://db/lms"})
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LMS_DATABASE_URL": "postgresql://db/lms", "LMS_SECRET_KEY": "short"})
    assert "short" not in str(caught.value)
    assert "at least 32" in str(caught.value)


def test_pool_bounds_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        Settings.from_env({"LMS_DB_POOL_MIN": "20", "LMS_DB_POOL_MAX": "5"})


def test_valid_production_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "LMS_DATABASE_URL": "postgresql://db/lms",
            "LMS_REDIS_URL": "redis://cache:6379/0",
            "LMS_SECRET_KEY": SECRET,
            "LMS_PORT": "9000",
            "LMS_MEDIA_DIR": "/srv/media",
            "LMS_SEED_DEMO": "no",
        }
    )
    assert not settings.embedded
    assert settings.port == 9000
    assert settings.media_dir == Path("/srv/media")
    assert not settings.seed_demo


def test_embedded_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings.from_env({"LMS_DATA_DIR": str(tmp_path)})
    first = settings.with_secret().secret_key
    assert len(first) >= 32
    assert settings.with_secret().secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("name", "raw", "shown"),
    [
        ("LMS_DATABASE_URL", "mysql://lms:hunter2@db/lms", "mysql://lms:***@db/lms"),
        ("LMS_DATABASE_URL", "mysql://lms:hun@ter2@db/lms", "mysql://lms:***@db/lms"),
        ("LMS_DATABASE_URL", "mysql://lms@db/lms?password=hunter2", "password=***"),
        ("LMS_REDIS_URL", "http://:hunter2@cache:6379/0", "http://:***@cache:6379/0"),
        ("LMS_REDIS_URL", "redis://:hunter2@[::1", "<hidden>"),  # no URL, still no password
    ],
)
def test_a_bad_url_is_reported_without_its_password(name: str, raw: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    [problem] = caught.value.problems
    assert "hunter2" not in problem
    assert problem.startswith(f"{name}=")
    assert shown in problem


def test_settings_show_their_urls_without_passwords_and_no_secrets() -> None:
    settings = Settings.from_env(
        {
            "LMS_DATABASE_URL": "postgresql://lms:hunter2@db/lms?sslmode=require",
            "LMS_REDIS_URL": "redis://:hunter3@cache:6379/0",
            "LMS_SECRET_KEY": SECRET,
        }
    ).with_secret()
    shown = repr(settings)
    for secret in ("hunter2", "hunter3", SECRET, settings.media_keys[0].secret):
        assert secret not in shown
    assert "database_url='postgresql://lms:***@db/lms?sslmode=require'" in shown
    assert "redis_url='redis://:***@cache:6379/0'" in shown
    assert "port=8000" in shown
    assert repr(Settings()).startswith("Settings(host='127.0.0.1', port=8000, database_url=None,")


def test_a_bad_value_that_is_no_secret_is_shown_as_given() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LMS_PORT": "eighty?", "LMS_DATABASE_URL": "mysql://db/lms"})
    assert sorted(caught.value.problems) == [
        "LMS_DATABASE_URL='mysql://db/lms': expected a URL starting with postgresql:// or "
        "postgres://",
        "LMS_PORT='eighty?': expected a whole number",
    ]


def test_media_urls_are_signed_with_a_key_derived_from_the_secret_unless_keys_are_given(
    tmp_path: Path,
) -> None:
    embedded = Settings.from_env({"LMS_DATA_DIR": str(tmp_path)}).with_secret()
    assert embedded.media_keys == (derived_key(embedded.secret_key),)
    production = Settings.from_env(
        {"LMS_DATABASE_URL": "postgresql://db/lms", "LMS_SECRET_KEY": SECRET}
    ).with_secret()
    assert production.media_keys == (derived_key(SECRET),)
    rotated = Settings.from_env(
        {"LMS_MEDIA_KEYS": f"k2:{'n' * 32},k1:{'o' * 32}", "LMS_DATA_DIR": str(tmp_path)}
    ).with_secret()
    assert [key.kid for key in rotated.media_keys] == ["k2", "k1"]
    assert (rotated.media_url_ttl, rotated.media_base_url, rotated.accel_redirect) == (
        14_400,
        "",
        None,
    )


def test_media_settings_are_read_and_bad_ones_named_without_echoing_a_secret() -> None:
    settings = Settings.from_env(
        {
            "LMS_MEDIA_URL_TTL": "3600",
            "LMS_MEDIA_BASE_URL": "https://cdn.example.edu/lms/",
            "LMS_ACCEL_REDIRECT": "/_media/",
        }
    )
    assert (settings.media_url_ttl, settings.media_base_url, settings.accel_redirect) == (
        3600,
        "https://cdn.example.edu/lms",
        "/_media/",
    )
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "LMS_DATABASE_URL": "postgresql://db/lms",
                "LMS_SECRET_KEY": SECRET,
                "LMS_MEDIA_KEYS": "k1:tooshort-hunter2",
                "LMS_MEDIA_URL_TTL": "10",
                "LMS_MEDIA_BASE_URL": "cdn.example.edu",
                "LMS_ACCEL_REDIRECT": "/_media",
            }
        )
    problems = caught.value.problems
    assert [p.split("=")[0] for p in problems] == [
        "LMS_MEDIA_KEYS",
        "LMS_MEDIA_URL_TTL",
        "LMS_MEDIA_BASE_URL",
        "LMS_ACCEL_REDIRECT",
    ]
    assert "hunter2" not in str(caught.value)
    assert "at least 32" in problems[0]
    for bad in ("https://cdn.example.edu/?x=1", "https://u:p@cdn", "https://cdn:99999"):
        with pytest.raises(ConfigError, match="LMS_MEDIA_BASE_URL"):
            Settings.from_env({"LMS_MEDIA_BASE_URL": bad})
    for bad in ("_media/", "/../", "/a b/", "/"):
        with pytest.raises(ConfigError, match="LMS_ACCEL_REDIRECT"):
            Settings.from_env({"LMS_ACCEL_REDIRECT": bad})


def test_sentry_and_media_space_settings_are_read_and_a_bad_dsn_never_echoed() -> None:
    default = Settings.from_env({})
    assert (default.sentry_dsn, default.sentry_environment) == (None, "production")
    assert default.media_min_free_bytes == 1 << 30

    dsn = "https://f00dcafe@sentry.example.org/42"
    settings = Settings.from_env(
        {
            "LMS_SENTRY_DSN": dsn,
            "LMS_SENTRY_ENVIRONMENT": "staging",
            "LMS_MEDIA_MIN_FREE_BYTES": "5000000",
        }
    )
    assert (settings.sentry_dsn, settings.sentry_environment) == (dsn, "staging")
    assert settings.media_min_free_bytes == 5_000_000
    assert "f00dcafe" not in repr(settings)

    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "LMS_SENTRY_DSN": "https://f00dcafe@sentry.example.org/",
                "LMS_MEDIA_MIN_FREE_BYTES": "-1",
            }
        )
    problems = caught.value.problems
    assert [p.split("=")[0] for p in problems] == ["LMS_MEDIA_MIN_FREE_BYTES", "LMS_SENTRY_DSN"]
    assert "f00dcafe" not in "\n".join(problems)
