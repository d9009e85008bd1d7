"""Reading params.yaml: YAML with line numbers, duplicate keys refused, the profile applied, and every
validation error turned into one line naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.params import Params
from pipeline.errors import ConfigError

PARAMS_FILE = Path("params.yaml")


def _describe(error: dict[str, Any], model: type[BaseModel], profile: Optional[tuple[str, dict]] = None) -> str:
    # "[key]" is pydantic's marker for a bad dict key: the key itself is already in the location.
    where = ".".join(str(part) for part in error["loc"] if part != "[key]")
    if profile is not None and _set_by(profile[1], error["loc"], error["type"] == "extra_forbidden"):
        where = f"profiles.{profile[0]}.{where}"
    if error["type"] == "extra_forbidden":
        parent = model
        for part in error["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation  # type: ignore[assignment]
        allowed = ", ".join(parent.model_fields) if isinstance(parent, type) else "?"
        return f"{where}: unknown key (allowed: {allowed})"
    if error["type"] == "missing":
        return f"{where}: missing (params.yaml holds every setting; the repository's copy has them all)"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    suffix = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{where}: {message}{suffix}" if where else f"{message}{suffix}"


def _set_by(overlay: dict[str, Any], loc: tuple, extra: bool) -> bool:
    """Whether the profile's own ``overlay`` holds the value at ``loc`` (so the error is the profile's)."""
    node: Any = overlay
    for part in (part for part in loc if part != "[key]"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return extra or not isinstance(node, dict)  # a section-wide check is not the profile's alone


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def apply_profile(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``profile: <name>`` lays ``profiles.<name>`` (the same sections, only the keys that differ)
    over the top-level sections; ``default`` is the top level as it stands."""
    raw = dict(raw)
    profile = raw.pop("profile", "default")
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: profiles: expected a mapping of profile names to sections")
    if not isinstance(profile, str):
        raise ConfigError(f"{source}: profile: expected a profile name (got {profile!r})")
    if profile == "default":
        return raw
    if profile not in profiles:
        allowed = ", ".join(["default", *map(str, profiles)])
        raise ConfigError(f"{source}: profile: unknown profile {profile!r} (allowed: {allowed})")
    if not isinstance(profiles[profile], dict):
        raise ConfigError(f"{source}: profiles.{profile}: expected a mapping of sections")
    return _merge(raw, profiles[profile])


def validate_params(raw: Any, source: str = str(PARAMS_FILE)) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    name = raw.get("profile", "default")
    overlay_of = raw.get("profiles") if isinstance(raw.get("profiles"), dict) else {}
    unprofiled = {key: value for key, value in raw.items() if key not in ("profile", "profiles")}
    raw = apply_profile(raw, source)
    profile = (name, overlay_of[name]) if name != "default" else None
    params = _validated(raw, source, profile)
    if profile is not None:  # the top level alone must be valid too: the controlled experiment uses it
        base = _validated(unprofiled, source, None)
        params._profile_free = (base.model, base.train)
    return params


def _validated(raw: dict[str, Any], source: str, profile: Optional[tuple[str, dict]]) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(e, Params, profile) for e in error.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges, it is no key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"{self.name}:{line}: duplicate key {key!r} (first given on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root)") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: invalid UTF-8 (params.yaml must be UTF-8 text)") from None
    except OSError as error:  # a directory, no permission
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({context} that starts on line {start.line + 1})"
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return validate_params(raw, str(path))
