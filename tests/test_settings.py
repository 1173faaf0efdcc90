"""Configuration: defaults, validation messages with file/key/line, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load_config, parse_duration, read_secret

ROOT = Path(__file__).resolve().parent.parent


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config", {})
    assert 25 <= len(config.feeds) <= 40
    assert config.settings.database.url == "sqlite:///data/monitor.db"
    assert {"files", "email"} <= set(config.settings.channels)
    assert not config.settings.channels["email"].enabled
    assert all(f.url.startswith(("http://", "https://")) for f in config.feeds)


def test_empty_directory_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path, {})
    assert config.feeds == ()
    assert config.settings.http.per_host == 2
    assert config.settings.http.concurrency == 20
    assert config.settings.http.deadline == 30


def test_every_problem_names_file_key_and_line(tmp_path: Path) -> None:
    write(tmp_path, "monitor.yaml", "http:\n  deadlin: 3\n  per_host: lots\n")
    write(tmp_path, "feeds.yaml", "feeds:\n  - url: https://ok.example/rss\n  - url: ftp://x/\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {})
    problems = "\n".join(info.value.problems)
    assert f"{tmp_path / 'monitor.yaml'}:2: http.deadlin: unknown key" in problems
    assert f"{tmp_path / 'monitor.yaml'}:3: http.per_host:" in problems
    assert f"{tmp_path / 'feeds.yaml'}:3: feeds.1.url: expected an http(s) URL" in problems


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    write(tmp_path, "monitor.yaml", "http:\n  deadline: [1,\n")
    with pytest.raises(ConfigError, match=r"monitor.yaml:\d+: invalid YAML"):
        load_config(tmp_path, {})


def test_environment_overrides_file(tmp_path: Path) -> None:
    write(tmp_path, "monitor.yaml", "database:\n  url: sqlite:///a.db\n")
    env = {
        "MONITOR_DATABASE_URL": "postgresql://u@db/monitor",
        "MONITOR_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8, 10.0.0.0/8",
        "MONITOR_HTTP__DEADLINE": "5s",
    }
    settings = load_config(tmp_path, env).settings
    assert settings.database.url == "postgresql://u@db/monitor"
    assert settings.http.allow_private_networks == ("127.0.0.0/8", "10.0.0.0/8")
    assert settings.http.deadline == 5


def test_bad_environment_value_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allow_private_networks"):
        load_config(tmp_path, {"MONITOR_ALLOW_PRIVATE_NETWORKS": "not-a-net"})


def test_feed_defaults_apply(tmp_path: Path) -> None:
    write(
        tmp_path,
        "feeds.yaml",
        "defaults:\n  interval: 30m\n  tags: [x]\nfeeds:\n"
        "  - url: https://a.example/rss\n  - url: https://b.example/rss\n    interval: 1h\n"
        "    tags: [y]\n    enabled: false\n",
    )
    a, b = load_config(tmp_path, {}).feeds
    assert (a.interval_s, a.tags, a.enabled) == (1800, ("x",), True)
    assert (b.interval_s, b.tags, b.enabled) == (3600, ("x", "y"), False)


def test_duplicate_feed_urls_rejected(tmp_path: Path) -> None:
    write(
        tmp_path, "feeds.yaml", "feeds:\n  - url: https://a.example/\n  - url: https://a.example/\n"
    )
    with pytest.raises(ConfigError, match="duplicate url"):
        load_config(tmp_path, {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("250ms", 0.25),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "5 parsecs", True, None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_enabled_email_channel_needs_recipients(tmp_path: Path) -> None:
    write(tmp_path, "monitor.yaml", "channels:\n  mail:\n    kind: email\n    recipients: []\n")
    with pytest.raises(ConfigError, match="recipient"):
        load_config(tmp_path, {})


def test_a_wrong_key_in_a_channel_is_named_by_its_path_in_the_file(tmp_path: Path) -> None:
    """pydantic puts the channel's kind in the error's path; the file has no such key."""
    write(
        tmp_path,
        "monitor.yaml",
        "channels:\n  mail:\n    kind: email\n    recipients: [desk@example.org]\n"
        "    smtp_prt: 25\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.problems == (
        f"{tmp_path / 'monitor.yaml'}:5: channels.mail.smtp_prt: unknown key",
    )


def test_secrets_from_env_or_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert read_secret({"PW": "a"}, "PW", None) == "a"
    assert read_secret({"PW_FILE": str(secret)}, "PW", None) == "s3cret"
    assert read_secret({}, None, str(secret)) == "s3cret"
    assert read_secret({}, "PW", None) is None
    with pytest.raises(ConfigError, match="secret file"):
        read_secret({}, None, str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("no", "no"),
        ("on", "on"),
        ("yes", "yes"),
        ("Y", "Y"),
        ("1:30", "1:30"),
        ("010", 10),
        ("0o10", 8),
        ("0x1f", 31),
        ("1e3", 1000.0),
        ("2.5", 2.5),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("2025-01-01", "2025-01-01"),
        ("Зеленський", "Зеленський"),
        ("'quoted no'", "quoted no"),
    ],
)
def test_fast_yaml_reads_scalars_like_the_round_trip_parser(
    tmp_path: Path, scalar: str, expected: object
) -> None:
    from monitor import yamlio

    path = tmp_path / "x.yaml"
    path.write_text(f"value: {scalar}\n", encoding="utf-8")
    assert yamlio.load_plain(path) == {"value": expected}
    assert str(yamlio.load(path)["value"]) == str(expected)


@pytest.mark.parametrize("name", ["monitor.yaml", "feeds.yaml", "watchlist.yaml"])
def test_fast_yaml_equals_round_trip_on_shipped_files(name: str) -> None:
    import json

    from monitor import yamlio

    path = ROOT / "config" / name
    assert yamlio.load_plain(path) == json.loads(json.dumps(yamlio.load(path)))


def test_an_empty_feeds_key_means_no_feeds(tmp_path: Path) -> None:
    write(tmp_path, "feeds.yaml", "# nothing yet\nfeeds:\n")
    assert load_config(tmp_path, {}).feeds == ()
