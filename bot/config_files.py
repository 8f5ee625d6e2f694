"""Reading the YAML files merchants edit, with errors that name the file and the key."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, TypeVar

import yaml


T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or holds an invalid value."""

    def __init__(self, path: Path, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {problem}")


def read_yaml_mapping(path: Path) -> Dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(path, "", f"cannot read file ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(path, "", f"not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "", "must be a mapping of keys to values")
    return data


def load_cached(path: Path, loader: Callable[[Path], T]) -> T:
    """`loader(path)`, parsed again only when the file changes on disk (merchants edit these live)."""
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError as error:
        raise ConfigError(path, "", f"cannot read file ({error.strerror})") from None
    return _load(loader, str(path), mtime_ns)


@lru_cache(maxsize=16)
def _load(loader: Callable[[Path], Any], path: str, mtime_ns: int) -> Any:
    return loader(Path(path))
