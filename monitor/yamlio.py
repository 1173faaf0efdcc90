"""YAML files users edit: round-trip load and atomic save that keep comments, and line lookup."""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml as libyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from monitor.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ValidationError


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 110
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load(path: Path) -> Any:
    """Load a YAML file round-trip (comments kept); a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    return loads(text, source=str(path))


class _CoreSchemaLoader(getattr(libyaml, "CSafeLoader", libyaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's fast loader, resolving scalars by the YAML 1.2 core schema as ruamel does
    (so `no`, `on` or `1:30` stay strings instead of YAML 1.1 booleans and numbers)."""


_CoreSchemaLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def _core_int(loader: Any, node: Any) -> int:
    text = loader.construct_scalar(node)
    return int(text, 0) if text[:2] in ("0o", "0x") else int(text)


_CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _core_int)


def load_plain(path: Path) -> Any:
    """Plain data from a YAML file (no comments, no line numbers), about ten times faster
    than a round-trip load: for reading config every cycle. Use `load` for line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        return libyaml.load(text, Loader=_CoreSchemaLoader)
    except libyaml.YAMLError:
        return loads(text, source=str(path))  # the round-trip parser words the error


def loads(text: str, *, source: str = "<string>") -> Any:
    try:
        return _yaml().load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from e


def dumps(data: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def save(path: Path, data: Any) -> None:
    """Write YAML atomically (temp file, fsync, rename), keeping comments and order."""
    write_atomic(path, dumps(data).encode("utf-8"))


def write_atomic(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def line_of(data: Any, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node on `loc` that the document has, or None."""
    node = data
    line: int | None = None
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            pos = node.lc.key(key)
            line = pos[0] + 1 if pos else line
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            pos = node.lc.item(key)
            line = pos[0] + 1 if pos else line
            node = node[key]
        else:
            break
    return line


def validation_problems(
    error: ValidationError, source: str, document: Any, branches: Collection[str] = ()
) -> list[str]:
    """One message per problem of a pydantic validation of the YAML `document`:
    `file:line: key.path: what is wrong`. `branches` are the tags of a tagged union (a
    channel's kind), which pydantic puts in the path but the file does not have."""
    problems = []
    for err in error.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        loc = [p for p in loc if p not in branches or len(loc) == 1]
        path = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(document, loc)
        where = f"{source}:{line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{where}: {path}: {msg}")
    return problems
