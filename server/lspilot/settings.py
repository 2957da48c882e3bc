"""The settings: one attrs type, its sources, their precedence and validation.

Sources, lowest first: built-in defaults < environment < ``initializationOptions`` <
``workspace/configuration`` (section ``lspilot``). Keys are camelCase. Each key is checked
on its own, so one bad value is refused with a message naming it while the other keys
still apply; the refused key keeps its previous valid value.
"""

from __future__ import annotations

import difflib
import functools
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import cattrs
from attrs import define, field

from lspilot.template import TemplateError, check_template

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# baseUrl "local": lspilot starts llama.cpp's server itself (lspilot.local).
LOCAL_BASE_URL = "local"
DEFAULT_MODEL = "gpt-5-4-mini"
BUILTIN_ACTION_IDS = ("explain", "refactor", "writeTests")
APPLY_MODES = ("show", "replace", "testFile")
EXPLAIN_SHOW = ("auto", "document", "message", "none")
COMPLETION_STYLES = ("auto", "chat", "fim")
RUN_TESTS = ("ask", "always", "never")
# Agent mode: how each kind of tool call is approved, least strict first.
APPROVALS = ("auto", "ask", "never")
TOOL_KINDS = ("read", "edit", "run", "mcp")
DEFAULT_APPROVAL: Mapping[str, str] = {"read": "auto", "edit": "ask", "run": "ask",
                                       "mcp": "ask"}
# Files that never reach the model by any path (surface.md); every layer may only add.
DEFAULT_CONTEXT_EXCLUDE = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*",
                           ".netrc", ".npmrc", ".pypirc", "**/secrets/**")

ApplyMode = Literal["show", "replace", "testFile"]


class ApiKey:
    """A secret that never shows itself in a repr, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class KeyFormError(ValueError):
    """The key's form is wrong; the message says how, without the key."""


def checked_key(value: Any) -> str:
    """The key as it is sent: surrounding whitespace stripped (``$(cat key.txt)`` of a CRLF
    file ends in ``\r``), and only printable ASCII, which every API key is. A key that is
    not is refused by what is wrong, never shown: its escaped form would get past the
    scrubber into messages."""
    if not isinstance(value, str):
        raise KeyFormError(f"expected a string, got {type(value).__name__}")
    key = value.strip()
    if not key:
        raise KeyFormError("it is empty")
    for character in key:
        if not (" " < character <= "~"):
            what = ("a control character" if character < " " or character == "\x7f"
                    else "a space" if character.isspace() else "a non-ASCII character")
            raise KeyFormError(f"it holds {what}; API keys are printable ASCII: copy the key "
                             "again, without line breaks or quotes")
    return key


@define(frozen=True, kw_only=True)
class ActionSetting:
    """One entry of the ``actions`` setting: a new action, or an override of a built-in."""

    id: str
    title: str | None = None
    prompt: str | None = None
    apply: str | None = None  # one of APPLY_MODES; checked with a readable message
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None


@define(frozen=True, kw_only=True)
class McpServerSetting:
    """One entry of ``mcpServers``: a stdio server (``command``, ``args``, ``env``) or a
    streamable-HTTP one (``url``, ``headers``), the shape other editors use."""

    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(factory=dict)
    # Named by the user's own settings (not a workspace's): started without a question.
    users_own: bool = True

    def shown(self) -> str:
        """The full command line (or URL), as the user is asked about it."""
        return self.url or shlex.join([self.command or "", *self.args])


@define(frozen=True)
class Price:
    """What a model costs, in US dollars per million tokens."""

    input: float
    output: float


@define(frozen=True, kw_only=True)
class Settings:
    base_url: str = DEFAULT_BASE_URL
    api_key: ApiKey | None = None
    api_key_command: tuple[str, ...] | None = None
    model: str = DEFAULT_MODEL
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    max_retries: int = 3
    retry_base_seconds: float = 1.0
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_response_chars: int = 200_000
    verify_tls: bool = True
    context_lines: int = 40
    context_budget_chars: int = 24_000
    max_concurrent_requests: int = 4
    live_refactor: bool = False
    confirm_edits: bool = False
    explain_show: str = "auto"  # one of EXPLAIN_SHOW
    actions: tuple[ActionSetting, ...] = field(factory=tuple)
    # A GGUF file, or a bundled model's name, for baseUrl "local"; None: the default one.
    local_model: str | None = None
    # Inline completions (ghost text).
    inline_completions: bool = True
    completion_model: str | None = None  # None: the model setting
    completion_style: str = "auto"  # one of COMPLETION_STYLES
    completion_debounce_ms: int = 100
    completion_max_tokens: int = 128
    completion_items: bool = False
    # Next edit suggestions (textDocument/copilotInlineEdit).
    next_edit_suggestions: bool = True
    # Usage and cost: prices merged over the built-in table (lspilot.usage).
    prices: dict[str, Price] = field(factory=dict)
    max_session_cost: float | None = None
    # Tests that run: after Write tests (lspilot.testing).
    run_tests: str = "ask"  # one of RUN_TESTS
    test_command: dict[str, tuple[str, ...]] = field(factory=dict)  # over the built-ins
    test_repair_rounds: int = 2
    test_timeout: float = 120.0
    # Agent mode (lspilot.agent): approvals per tool kind, limits per turn, and what never
    # reaches the model.
    agent_approval: dict[str, str] = field(factory=lambda: dict(DEFAULT_APPROVAL))
    agent_max_steps: int = 25
    agent_max_cost: float | None = None
    context_exclude: tuple[str, ...] = DEFAULT_CONTEXT_EXCLUDE
    # MCP servers whose tools agent mode offers (lspilot.mcp), by name.
    mcp_servers: dict[str, McpServerSetting] = field(factory=dict)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


KEYS: tuple[str, ...] = tuple(camel(f.name) for f in attrs.fields(Settings))

# Environment variables per key, first found wins (surface.md).
ENVIRONMENT: Mapping[str, tuple[str, ...]] = {
    "baseUrl": ("LSPILOT_BASE_URL", "OPENAI_BASE_URL"),
    "apiKey": ("LSPILOT_API_KEY", "OPENAI_API_KEY"),
    "model": ("LSPILOT_MODEL",),
    "localModel": ("LSPILOT_LOCAL_MODEL",),
}


# -- strict structuring -------------------------------------------------------------
# cattrs' defaults are lenient (bool("false") is True, int(2.7) is 2); settings must not be.


def _strict(kind: type, name: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {name}, got a boolean")
        if kind is float and isinstance(value, int):
            try:
                return float(value)
            except OverflowError:
                raise ValueError("expected a number, got one too large") from None
        if not isinstance(value, kind):
            raise ValueError(f"expected {name}, got {_describe(value)}")
        return value

    return structure


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value)
    )
    return f"{kind} {value!r}"[:80] if kind else f"{value!r}"[:80]


def _structure_strings(value: Any, _: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {_describe(value)}")
    return tuple(value)


def _structure_prices(value: Any, _: Any) -> dict[str, Price]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of model names, got {_describe(value)}")
    prices = {}
    for model, price in value.items():
        if not isinstance(price, dict) or set(price) != {"input", "output"}:
            raise ValueError(f"{model}: expected {{\"input\": number, \"output\": number}} "
                             f"(USD per 1M tokens), got {_describe(price)}")
        number = _strict(float, "a number")
        prices[str(model)] = Price(number(price["input"], None), number(price["output"], None))
    return prices


def _structure_commands(value: Any, _: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of language ids, got {_describe(value)}")
    return {str(language): _structure_strings(argv, None) for language, argv in value.items()}


def _structure_approval(value: Any, _: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object such as {{\"edit\": \"auto\"}}, got "
                         f"{_describe(value)}")
    for kind, approval in value.items():
        if kind not in TOOL_KINDS:
            raise ValueError(f"{kind!r} is not a kind of tool: use {', '.join(TOOL_KINDS)}")
        if approval not in APPROVALS:
            raise ValueError(f"{kind}: must be one of {', '.join(APPROVALS)}, got "
                             f"{_describe(approval)}")
    return {**DEFAULT_APPROVAL, **value}


_MCP_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{what} must be an object of strings, got {_describe(value)}")
    return dict(value)


def _structure_mcp_servers(value: Any, _: Any) -> dict[str, McpServerSetting]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of server names, got {_describe(value)}")
    servers = {}
    for name, entry in value.items():
        if not _MCP_NAME.fullmatch(str(name)):
            raise ValueError(f"{name!r}: a server name is 1 to 40 letters, digits, - or _")
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected {{\"command\", \"args\"?, \"env\"?}} or "
                             f"{{\"url\", \"headers\"?}}, got {_describe(entry)}")
        unknown = set(entry) - {"command", "args", "env", "url", "headers", "type"}
        if unknown:
            raise ValueError(f"{name}: unknown {', '.join(sorted(unknown))}")
        command, url = entry.get("command"), entry.get("url")
        if (command is None) == (url is None):
            raise ValueError(f"{name}: give either command (a stdio server) or url (a "
                             "streamable-HTTP server)")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            raise ValueError(f"{name}.command must name a program")
        if url is not None and (not isinstance(url, str) or urlsplit(url).scheme not in (
                "http", "https")):
            raise ValueError(f"{name}.url must be an http:// or https:// URL")
        servers[str(name)] = McpServerSetting(
            command=command, args=_structure_strings(entry.get("args", []), None),
            env=_string_map(entry.get("env", {}), f"{name}.env"), url=url,
            headers=_string_map(entry.get("headers", {}), f"{name}.headers"))
    return servers


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook_func(lambda t: t == dict[str, McpServerSetting],
                                      _structure_mcp_servers)
    conv.register_structure_hook_func(lambda t: t == dict[str, str], _structure_approval)
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(int, _strict(int, "a whole number"))
    conv.register_structure_hook(float, _strict(float, "a number"))
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_strings)
    conv.register_structure_hook_func(lambda t: t == dict[str, Price], _structure_prices)
    conv.register_structure_hook_func(lambda t: t == dict[str, tuple[str, ...]],
                                      _structure_commands)
    conv.register_structure_hook(ApiKey, lambda v, _: ApiKey(checked_key(v)))
    renames: dict[str, Any] = {
        f.name: cattrs.gen.override(rename=camel(f.name)) for f in attrs.fields(ActionSetting)
    }
    conv.register_structure_hook(
        ActionSetting,
        cattrs.gen.make_dict_structure_fn(
            ActionSetting, conv, _cattrs_forbid_extra_keys=True, **renames
        ),
    )
    return conv


# Built on first use: generating the structuring code is start-up time otherwise.
_converter = functools.cache(_make_converter)


# -- per-key checks -----------------------------------------------------------------


def _range(low: float | None, high: float | None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None:
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                return f"must be at least {low}"
            return f"must be from {low} to {high}"
        return None

    return check


def _check_url(value: str) -> str | None:
    if value == LOCAL_BASE_URL:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ("must be an http:// or https:// URL such as https://api.openai.com/v1, "
                "or \"local\"")
    return None


def _check_stop(value: tuple[str, ...] | None) -> str | None:
    if value is not None and len(value) > 4:
        return "takes at most 4 stop strings"
    return None


def _check_nonempty(value: tuple[str, ...] | None) -> str | None:
    if value is not None and not value:
        return "must name a program, e.g. [\"pass\", \"show\", \"openai\"]"
    return None


def _check_choice(choices: Sequence[str]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _check_actions(actions: tuple[ActionSetting, ...]) -> str | None:
    seen: set[str] = set()
    for index, action in enumerate(actions):
        where = f"actions[{index}]"
        if not re.fullmatch(r"[A-Za-z][\w.-]*", action.id):
            return f"{where}.id {action.id!r} must start with a letter (letters, digits, . - _)"
        if action.id in seen:
            return f"{where}.id {action.id!r} appears twice"
        seen.add(action.id)
        if action.id not in BUILTIN_ACTION_IDS:
            missing = [k for k in ("title", "prompt", "apply") if getattr(action, k) is None]
            if missing:
                return f"{where} ({action.id}) is a new action and needs {', '.join(missing)}"
        if action.apply is not None and action.apply not in APPLY_MODES:
            return f"{where}.apply must be one of {', '.join(APPLY_MODES)}"
        if action.prompt is not None:
            try:
                check_template(action.prompt)
            except TemplateError as exc:
                return f"{where}.prompt: {exc}"
        for name, problem in (
            ("temperature", _range(0, 2)(action.temperature)),
            ("topP", _range(0, 1)(action.top_p)),
            ("maxTokens", _range(1, None)(action.max_tokens)),
            ("stop", _check_stop(action.stop)),
        ):
            if problem:
                return f"{where}.{name} {problem}"
    return None


def _check_prices(prices: dict[str, Price]) -> str | None:
    for model, price in prices.items():
        if price.input < 0 or price.output < 0:
            return f"{model}: prices cannot be negative"
    return None


def _check_test_commands(commands: dict[str, tuple[str, ...]]) -> str | None:
    for language, argv in commands.items():
        if not argv:
            return (f"{language}: must name a program, "
                    "e.g. [\"python\", \"-m\", \"pytest\", \"{file}\"]")
    return None


_CHECKS: Mapping[str, Callable[[Any], str | None]] = {
    "baseUrl": _check_url,
    "apiKeyCommand": _check_nonempty,
    "temperature": _range(0, 2),
    "topP": _range(0, 1),
    "maxTokens": _range(1, None),
    "stop": _check_stop,
    "maxRetries": _range(0, 10),
    "retryBaseSeconds": _range(0.001, 60),
    "connectTimeout": _range(0.1, 600),
    "idleTimeout": _range(0.1, 3600),
    "maxResponseChars": _range(1, None),
    "contextLines": _range(0, 10_000),
    "contextBudgetChars": _range(100, 10_000_000),
    "maxConcurrentRequests": _range(1, 64),
    "explainShow": _check_choice(EXPLAIN_SHOW),
    "localModel": lambda value: None if value is None or value.strip()
    else "must name a GGUF file or a bundled model",
    "actions": _check_actions,
    "completionStyle": _check_choice(COMPLETION_STYLES),
    "completionDebounceMs": _range(0, 5000),
    "completionMaxTokens": _range(1, 4096),
    "prices": _check_prices,
    "maxSessionCost": _range(0, None),
    "runTests": _check_choice(RUN_TESTS),
    "testCommand": _check_test_commands,
    "testRepairRounds": _range(0, 5),
    "testTimeout": _range(1, 3600),
    "agentMaxSteps": _range(1, 200),
    "agentMaxCost": _range(0, None),
}


def _stricter_approval(lower: dict[str, str], given: dict[str, str],
                       users_own: bool) -> dict[str, str]:
    """The user's own layers set approvals; a workspace's may only make each stricter."""
    if users_own:
        return given
    return {kind: max(lower[kind], given[kind], key=APPROVALS.index) for kind in lower}


def _more_excluded(lower: tuple[str, ...], given: tuple[str, ...],
                   users_own: bool) -> tuple[str, ...]:
    """Every layer adds globs; none removes one (the defaults included)."""
    return lower + tuple(glob for glob in given if glob not in lower)


def _added_servers(lower: dict[str, McpServerSetting], given: dict[str, McpServerSetting],
                   users_own: bool) -> dict[str, McpServerSetting]:
    """The user's layers define servers; a workspace's may add servers of its own (asked
    about before they start), never change one the user defined."""
    if users_own:
        return {**lower, **given}
    added = {name: attrs.evolve(server, users_own=False) for name, server in given.items()
             if name not in lower}
    return {**lower, **added}


# Keys whose layers combine instead of the higher one replacing the lower: (what lower
# layers gave, what this one gives, whether it is the user's own) -> the value.
_COMBINE: Mapping[str, Callable[[Any, Any, bool], Any]] = {
    "agentApproval": _stricter_approval,
    "contextExclude": _more_excluded,
    "mcpServers": _added_servers,
}

_FIELD_TYPES: Mapping[str, Any] = {
    camel(f.name): f.type for f in attrs.fields(attrs.resolve_types(Settings))
}


@define(frozen=True)
class Layer:
    """One source of settings: where it came from (for messages) and its raw values.

    ``users_own``: the user's own setup (defaults, environment, the settings file,
    ``initializationOptions``), as against a workspace's settings, which often come from
    files inside the project and may only make lspilot stricter (lspilot.consent).
    """

    source: str
    values: Mapping[str, Any]
    users_own: bool = True


@define(frozen=True)
class Resolved:
    settings: Settings
    problems: tuple[str, ...]
    # For each key a layer set (the value that stands), that layer: whose the value is.
    origins: Mapping[str, Layer] = attrs.field(factory=dict)

    def set_by_workspace(self, *keys: str) -> bool:
        """Whether any of ``keys`` has its value from a workspace's settings."""
        return any(key in self.origins and not self.origins[key].users_own for key in keys)


def environment_layer(environ: Mapping[str, str]) -> Layer:
    values: dict[str, Any] = {}
    for key, names in ENVIRONMENT.items():
        for name in names:
            if environ.get(name):
                values[key] = environ[name]
                break
    return Layer("environment", values)


def parse_value(key: str, value: Any) -> Any:
    """Structure and check one raw value; raises ValueError with the reason."""
    try:
        parsed = _converter().structure(value, _FIELD_TYPES[key])
    except cattrs.ClassValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc, path=key))) from None
    except cattrs.IterableValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc, path=key))) from None
    except KeyFormError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        if key == "apiKey":  # never echo what may be a secret
            raise ValueError(f"expected a string, got {type(value).__name__}") from None
        raise ValueError(str(exc) or type(exc).__name__) from None
    check = _CHECKS.get(key)
    problem = check(parsed) if check else None
    if problem:
        raise ValueError(problem)
    return parsed


def resolve(layers: Sequence[Layer], previous: Settings | Resolved | None = None) -> Resolved:
    """Merge the layers over the defaults; refuse bad keys, keeping the value a lower layer
    gave, else the previous one (with where it came from, when ``previous`` says)."""
    if isinstance(previous, Resolved):
        previous_settings, previous_origins = previous.settings, previous.origins
    else:
        previous_settings, previous_origins = previous or Settings(), {}
    merged: dict[str, Any] = {}
    origins: dict[str, Layer] = {}
    problems: list[str] = []
    for layer in layers:
        for key, raw in layer.values.items():
            if raw is None:
                continue  # null means "not set here", so a lower layer's value stands
            if key not in _FIELD_TYPES:
                hint = _did_you_mean(key)
                problems.append(f"Unknown setting '{key}' (from {layer.source}){hint}; ignored.")
                continue
            try:
                value = parse_value(key, raw)
                combine = _COMBINE.get(key)
                if combine is not None:
                    lower = merged.get(key, getattr(Settings(), snake(key)))
                    value = combine(lower, value, layer.users_own)
                merged[key] = value
                origins[key] = layer
            except ValueError as exc:
                if key not in merged:
                    merged[key] = getattr(previous_settings, snake(key))
                    if key in previous_origins:
                        origins[key] = previous_origins[key]
                kept = merged[key]
                shown = "unset" if kept is None else "the key set before" if key == "apiKey" \
                    else repr(kept)
                problems.append(
                    f"Setting '{key}' (from {layer.source}) refused: {exc}. "
                    f"Keeping {shown}."
                )
    settings = attrs.evolve(Settings(), **{snake(k): v for k, v in merged.items()})
    return Resolved(settings, tuple(problems), origins)


def _did_you_mean(key: str) -> str:
    lowered = key.lower().replace("_", "")
    for known in KEYS:
        if known.lower() == lowered:
            return f" (did you mean '{known}'?)"
    close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as camelCase JSON with the key hidden, for `lspilot check` and logs."""
    out: dict[str, Any] = {}
    for f in attrs.fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "api_key":
            value = None if value is None else "***"
        elif f.name == "actions":
            value = [
                {camel(a.name): getattr(act, a.name) for a in attrs.fields(ActionSetting)
                 if getattr(act, a.name) is not None}
                for act in value
            ]
        elif f.name == "agent_approval":
            value = dict(value)
        elif f.name == "mcp_servers":
            value = {name: {k: v for k, v in (
                ("command", server.command), ("args", list(server.args)),
                ("env", {k: "***" for k in server.env}), ("url", server.url),
                ("headers", {k: "***" for k in server.headers})) if v}
                for name, server in value.items()}
        elif f.name == "test_command":
            value = {language: list(argv) for language, argv in value.items()}
        elif f.name == "prices":
            value = {model: {"input": p.input, "output": p.output} for model, p in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[camel(f.name)] = value
    return out


def unwrap_section(options: Any) -> Mapping[str, Any]:
    """Accept both ``{...}`` and ``{"lspilot": {...}}`` as initialization options."""
    if not isinstance(options, Mapping):
        return {}
    inner = options.get("lspilot")
    if isinstance(inner, Mapping) and len(options) == 1:
        return inner
    return options
