"""Typed configs: any tree of dataclasses loaded from YAML plus `--set key=value` overrides, saved back.
Every value is checked against its field's type; each mistake is a ConfigError naming the file and key."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import os
import tempfile
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

from finevq.errors import ConfigError

ConfigT = TypeVar("ConfigT")


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first_line[key]})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _Origin:
    """Says where the value at a dotted key came from: an override, else the file (or the defaults)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.file = f"config file {path}" if path is not None else "config defaults"
        self.overrides: dict[str, str] = {}

    def of(self, key: str) -> str:
        """The override that set `key` (or a section above it), else the file, naming the overrides
        below `key` when there are some (a section's validation may fail because of them)."""
        for overridden in sorted(self.overrides, key=len, reverse=True):
            if key == overridden or key.startswith((overridden + ".", overridden + "[")):
                return f"override --set {self.overrides[overridden]}"
        below = [self.overrides[k] for k in self.overrides if not key or k.startswith(key + ".")]
        return self.file + "".join(f" with --set {override}" for override in below)


def load_config(cls: type[ConfigT], path: str | os.PathLike | None = None,
                overrides: Iterable[str] = ()) -> ConfigT:
    """A `cls` (a dataclass, possibly nesting others) from its defaults, the YAML file at `path`, then
    each `key=value` override in order.

    Dotted keys reach nested fields (`model.lora.rank=16`) and dict entries; an override's value is
    parsed as YAML (`1e-4`, `[a, b]`, `null`, `{rank: 4}`, which replaces the whole section), except
    that a `str` field takes the text as written. Raises `ConfigError` naming the file or override and
    the key for a missing file, malformed YAML (with its line), unknown keys (with a suggestion),
    values of the wrong type, and errors raised by the dataclasses' `__post_init__`."""
    _require_dataclass_type(cls)
    data = _read_yaml(Path(path)) if path is not None else {}
    origin = _Origin(path)
    for override in overrides:
        key, separator, text = str(override).partition("=")
        key = key.strip()
        where = f"override --set {override}"
        if not separator or not key:
            raise ConfigError(f"{where}: expected KEY=VALUE, e.g. training.lr=1e-4")
        keys, field_type = _resolve_key(cls, key, where)
        node = data
        for name in keys[:-1]:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        node[keys[-1]] = _parse_override_value(text, field_type, key, where)
        origin.overrides[key] = override
    return _convert(cls, data, "", origin)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain YAML/JSON-ready data (tuples as lists, paths as strings) that `load_config`
    reads back into an equal config."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"expected a dataclass config instance, got {config!r}")
    return _plain(config)


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write the config as YAML at `path` (atomically: a temporary file, then a rename)."""
    path = Path(path)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def _require_dataclass_type(cls: Any) -> None:
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise ConfigError(f"expected a dataclass type to load the config into, got {cls!r}")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path}: " + ("is a directory" if path.is_dir() else "not found"))
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"config file {path}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _suggestion(name: str, known: Iterable[str], prefix: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {_join(prefix, close[0])!r}?)"
    return f" (known keys{' under ' + repr(prefix) if prefix else ''}: {', '.join(known)})"


def _without_none(tp: Any) -> Any:
    """`X` of `Optional[X]`, else `tp` itself."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        arms = [arm for arm in typing.get_args(tp) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return tp


def _resolve_key(cls: type, dotted: str, where: str) -> tuple[list[str], Any]:
    """The key's parts and the type of the field it names, or a ConfigError naming the bad part."""
    keys = dotted.split(".")
    current: Any = cls
    for depth, name in enumerate(keys):
        prefix = ".".join(keys[:depth])
        current = _without_none(current)
        if not name:
            raise ConfigError(f"{where}: empty part in key {dotted!r}")
        if dataclasses.is_dataclass(current):
            fields = _field_types(current)
            if name not in fields:
                raise ConfigError(f"{where}: unknown key {_join(prefix, name)!r}{_suggestion(name, fields, prefix)}")
            current = fields[name]
        elif typing.get_origin(current) in (dict, Mapping):
            current = typing.get_args(current)[1]
        else:
            raise ConfigError(f"{where}: {prefix!r} holds a value of type {_type_name(current)}, "
                              f"it has no sub-key {name!r}")
    return keys, current


def _parse_override_value(text: str, field_type: Any, key: str, where: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: key {key!r}: value {text!r} is not valid YAML "
                          f"({getattr(error, 'problem', error)})") from None
    if isinstance(value, (bool, int, float, datetime.date)) and not _fits(field_type, value) \
            and _fits(field_type, text.strip()):
        return text.strip()
    return value


def _fits(tp: Any, value: Any) -> bool:
    try:
        _convert(tp, value, "", _Origin(None))
    except ConfigError:
        return False
    return True


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(arm) for arm in typing.get_args(tp))
    if isinstance(tp, type) and not typing.get_args(tp):
        return "mapping" if dataclasses.is_dataclass(tp) else tp.__name__
    return str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, key: str, origin: _Origin) -> Any:
    """`value` checked against (and, for floats, tuples, paths and dataclasses, converted to) type `tp`."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{origin.of(key)}: key {key!r}: expected {expected}, got {value!r}")

    kind = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if kind in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [arm for arm in args if arm is not type(None)]
        if len(arms) == 1:
            return _convert(arms[0], value, key, origin)
        for arm in arms:
            if _fits(arm, value):
                return _convert(arm, value, key, origin)
        raise bad(_type_name(tp))
    if kind is Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in args], n=1, cutoff=0.6)
        raise bad(_type_name(tp) + (f" (did you mean {close[0]!r}?)" if close else ""))
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, key, origin)
    if kind in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad(f"a list ({_type_name(tp)})")
        fixed_length = kind is tuple and args and args[-1] is not Ellipsis
        if fixed_length and len(args) != len(value):
            raise bad(f"a list of exactly {len(args)} items ({_type_name(tp)})")
        item_types = args if fixed_length else [args[0] if args else Any] * len(value)
        items = [_convert(item_type, item, f"{key}[{i}]", origin)
                 for i, (item_type, item) in enumerate(zip(item_types, value))]
        return tuple(items) if (kind or tp) is tuple else items
    if kind in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad(f"a mapping ({_type_name(tp)})")
        key_type, value_type = args or (Any, Any)
        return {_convert(key_type, k, f"{key} key {k!r}", origin): _convert(value_type, v, _join(key, str(k)), origin)
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        # PyYAML reads 1e-4 (no dot) as a string; accept any text float() reads.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad("a string (quote it in YAML)")
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, (str, PurePath)):
            return tp(value)
        raise bad("a path")
    raise ConfigError(f"{origin.of(key)}: key {key!r}: unsupported field type {tp!r} in the config classes")


def _build_dataclass(cls: type, value: Any, key: str, origin: _Origin) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{origin.of(key)}: key {key!r}: expected a mapping of {cls.__name__} fields, got {value!r}")
    fields = _field_types(cls)
    unknown = [name for name in value if name not in fields]
    if unknown:
        listed = ", ".join(f"{_join(key, str(name))!r}{_suggestion(name, fields, key)}" for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(f"{origin.of(_join(key, str(unknown[0])))}: unknown key{plural} {listed}")
    kwargs = {name: _convert(fields[name], item, _join(key, name), origin) for name, item in value.items()}
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        names = ", ".join(repr(_join(key, name)) for name in missing)
        raise ConfigError(f"{origin.of(key)}: missing required key {names}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        section = f"section {key!r}" if key else "top level"
        raise ConfigError(f"{origin.of(key)}: {section}: {error}") from error
