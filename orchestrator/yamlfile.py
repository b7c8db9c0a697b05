"""Placeholder replaced by the loader work: reads a YAML settings file into a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def load_settings_file(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top")
    return dict(data)
