"""The user's settings file, ``$XDG_CONFIG_HOME/lspilot/settings.json``: the user's own
layer, between the environment and ``initializationOptions``.

Read by the server, ``lspilot check`` and ``lspilot acp``, so one file configures every
editor. A file that cannot be read or parsed is named in a problem and ignored; a bad key
inside it is refused by the settings like any other (the rest still applies).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from lspilot.settings import Layer, unwrap_section

# A settings file is small; a huge one is a mistake (or a FIFO), not settings.
MAX_BYTES = 1_000_000


def settings_path(environ: Mapping[str, str]) -> Path:
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home())
                                                    / ".config")
    return Path(config) / "lspilot" / "settings.json"


def settings_file_layer(environ: Mapping[str, str]) -> tuple[Layer, list[str]]:
    """The file's layer (empty when there is no file) and what was wrong with it."""
    path = settings_path(environ)
    source = f"the settings file {path}"
    try:
        if not path.exists():
            return Layer(source, {}), []
        if not path.is_file():
            return Layer(source, {}), [f"The settings file {path} is not a regular file; "
                                       "ignored."]
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return Layer(source, {}), [f"Could not read the settings file {path}: "
                                   f"{exc.strerror or exc}; ignored."]
    if len(data) > MAX_BYTES:
        return Layer(source, {}), [f"The settings file {path} is over {MAX_BYTES:,} bytes; "
                                   "ignored."]
    try:
        values = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(
            exc, json.JSONDecodeError) else ""
        return Layer(source, {}), [f"The settings file {path} is not valid JSON{where}: "
                                   "fix it, or remove it; ignored."]
    if not isinstance(values, dict):
        return Layer(source, {}), [f"The settings file {path} must hold a JSON object of "
                                   "settings such as {\"model\": \"gpt-5-4-mini\"}; ignored."]
    return Layer(source, unwrap_section(values)), []
