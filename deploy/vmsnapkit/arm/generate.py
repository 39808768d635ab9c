"""Write (or check) arm-templates/<name>/azuredeploy.json and its example parameters file."""

from __future__ import annotations

import json
import os

from .description import TEMPLATES_DIR
from .templates import TEMPLATES

TEMPLATE_FILE = "azuredeploy.json"
PARAMETERS_FILE = "azuredeploy.parameters.example.json"


def render(doc: dict) -> str:
    """The committed form: stable key order as built, 2-space indent, trailing newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def expected_files(out_dir: str = TEMPLATES_DIR) -> dict[str, str]:
    files = {}
    for name, build in TEMPLATES.items():
        template, params = build()
        files[os.path.join(out_dir, name, TEMPLATE_FILE)] = render(template)
        files[os.path.join(out_dir, name, PARAMETERS_FILE)] = render(params)
    return files


def _differs(path: str, text: str) -> bool:
    """Whether the file at `path` is missing or holds anything but `text`."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() != text
    except OSError:
        return True


def write(out_dir: str = TEMPLATES_DIR) -> list[str]:
    written = []
    for path, text in expected_files(out_dir).items():
        if not _differs(path, text):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written


def stale(out_dir: str = TEMPLATES_DIR) -> list[str]:
    """Files whose committed content differs from what the description generates."""
    return [path for path, text in expected_files(out_dir).items() if _differs(path, text)]
