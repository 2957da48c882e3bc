"""Settings: sources and their precedence, per-key validation, the secret key."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lspilot.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    KEYS,
    ActionSetting,
    ApiKey,
    Layer,
    Settings,
    environment_layer,
    parse_value,
    redacted,
    resolve,
    unwrap_section,
)

SECRET = "sk-test-SECRET-0123456789"


def ws(
    values: dict[str, Any], previous: Settings | None = None
) -> tuple[Settings, tuple[str, ...]]:
    resolved = resolve([Layer("workspace", values)], previous)
    return resolved.settings, resolved.problems


# -- defaults and precedence ---------------------------------------------------------------


def test_defaults() -> None:
    resolved = resolve([])
    assert resolved.problems == ()
    s = resolved.settings
    assert s.base_url == DEFAULT_BASE_URL == "https://api.openai.com/v1"
    assert s.model == DEFAULT_MODEL == "gpt-5-4-mini"
    assert s.api_key is None
    assert (s.temperature, s.top_p, s.max_tokens, s.stop) == (None, None, None, None)
    assert s.max_retries == 3


def test_environment_lspilot_before_openai() -> None:
    layer = environment_layer({
        "LSPILOT_BASE_URL": "http://lspilot.example/v1",
        "OPENAI_BASE_URL": "http://openai.example/v1",
        "LSPILOT_API_KEY": "sk-lspilot",
        "OPENAI_API_KEY": "sk-openai",
        "LSPILOT_MODEL": "m-env",
    })
    s = resolve([layer]).settings
    assert s.base_url == "http://lspilot.example/v1"
    assert s.api_key == ApiKey("sk-lspilot")
    assert s.model == "m-env"


def test_environment_falls_back_to_openai_variables() -> None:
    layer = environment_layer({
        "OPENAI_BASE_URL": "http://openai.example/v1",
        "OPENAI_API_KEY": "sk-openai",
        "LSPILOT_API_KEY": "",  # set but empty counts as unset
    })
    s = resolve([layer]).settings
    assert s.base_url == "http://openai.example/v1"
    assert s.api_key is not None and s.api_key.reveal() == "sk-openai"
    assert s.model == DEFAULT_MODEL


def test_environment_ignores_unrelated_variables() -> None:
    assert environment_layer({"HOME": "/root", "OPENAI_MODEL": "x"}).values == {}


def test_precedence_defaults_env_init_workspace() -> None:
    env = environment_layer({"LSPILOT_MODEL": "m-env", "LSPILOT_BASE_URL": "http://env/v1",
                             "LSPILOT_API_KEY": "sk-env"})
    init = Layer("initializationOptions", {"model": "m-init", "baseUrl": "http://init/v1",
                                           "temperature": 0.5})
    workspace = Layer("workspace", {"model": "m-ws", "maxTokens": 100})
    resolved = resolve([env, init, workspace])
    s = resolved.settings
    assert resolved.problems == ()
    assert s.model == "m-ws"  # workspace beats init and env
    assert s.base_url == "http://init/v1"  # init beats env
    assert s.api_key == ApiKey("sk-env")  # env beats the default
    assert s.temperature == 0.5
    assert s.max_tokens == 100
    assert s.idle_timeout == Settings().idle_timeout  # default where nobody set it


def test_null_means_not_set_in_that_layer() -> None:
    init = Layer("initializationOptions", {"model": "m-init"})
    workspace = Layer("workspace", {"model": None})
    resolved = resolve([init, workspace])
    assert resolved.settings.model == "m-init"
    assert resolved.problems == ()


def test_good_values_are_structured() -> None:
    s, problems = ws({
        "temperature": 1,  # an int for a float
        "topP": 0.9,
        "maxTokens": 1,
        "stop": ["a", "b", "c", "d"],
        "verifyTls": False,
        "baseUrl": "http://127.0.0.1:8080/v1",
        "apiKeyCommand": ["pass", "show", "openai"],
    })
    assert problems == ()
    assert s.temperature == 1.0 and isinstance(s.temperature, float)
    assert s.top_p == 0.9
    assert s.max_tokens == 1
    assert s.stop == ("a", "b", "c", "d")
    assert s.verify_tls is False
    assert s.base_url == "http://127.0.0.1:8080/v1"
    assert s.api_key_command == ("pass", "show", "openai")


def test_single_stop_string_is_accepted() -> None:
    s, problems = ws({"stop": "END"})
    assert problems == ()
    assert s.stop == ("END",)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", 0, 0.0),
        ("temperature", 2, 2.0),
        ("topP", 0, 0.0),
        ("topP", 1, 1.0),
        ("maxTokens", 1, 1),
    ],
)
def test_range_edges_are_accepted(key: str, value: Any, expected: Any) -> None:
    assert parse_value(key, value) == expected


# -- refused values ------------------------------------------------------------------------

BAD_VALUES = [
    ("temperature", -0.1, "from 0 to 2"),
    ("temperature", 2.01, "from 0 to 2"),
    ("temperature", "0.5", "a number"),
    ("temperature", True, "boolean"),
    ("topP", 1.5, "from 0 to 1"),
    ("topP", -1, "from 0 to 1"),
    ("maxTokens", 0, "at least 1"),
    ("maxTokens", -5, "at least 1"),
    ("maxTokens", 2.5, "whole number"),
    ("maxTokens", "100", "whole number"),
    ("stop", ["a", "b", "c", "d", "e"], "at most 4"),
    ("stop", [1, 2], "list of strings"),
    ("stop", 5, "list of strings"),
    ("baseUrl", "api.openai.com/v1", "http"),
    ("baseUrl", "ftp://example.com/v1", "http"),
    ("baseUrl", "http://", "http"),
    ("baseUrl", 42, "a string"),
    ("model", 42, "a string"),
    ("model", ["gpt"], "a string"),
    ("verifyTls", "false", "true or false"),
    ("liveRefactor", "true", "true or false"),
    ("confirmEdits", 1, "true or false"),
    ("maxRetries", 11, "from 0 to 10"),
    ("maxConcurrentRequests", 0, "from 1 to 64"),
    ("explainShow", "popup", "one of"),
    ("apiKeyCommand", [], "program"),
]


@pytest.mark.parametrize(("key", "value", "reason"), BAD_VALUES)
def test_bad_value_is_refused_naming_the_key(key: str, value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_value(key, value)
    _settings, problems = ws({key: value})
    assert len(problems) == 1
    assert f"'{key}'" in problems[0]
    assert reason in problems[0]


@pytest.mark.parametrize(("key", "value", "reason"), BAD_VALUES)
def test_bad_value_keeps_previous_value_while_other_keys_apply(
    key: str, value: Any, reason: str
) -> None:
    previous = Settings(
        temperature=0.7, top_p=0.5, max_tokens=55, stop=("X",), base_url="http://prev/v1",
        model="m-prev", verify_tls=False, live_refactor=True, confirm_edits=True,
        max_retries=5, max_concurrent_requests=7, explain_show="message",
        api_key_command=("prev",),
    )
    other = {"contextLines": 12} if key != "contextLines" else {"maxRetries": 1}
    s, problems = ws({key: value, **other}, previous)
    field = {"topP": "top_p", "maxTokens": "max_tokens", "baseUrl": "base_url",
             "verifyTls": "verify_tls", "liveRefactor": "live_refactor",
             "confirmEdits": "confirm_edits", "maxRetries": "max_retries",
             "maxConcurrentRequests": "max_concurrent_requests",
             "explainShow": "explain_show", "apiKeyCommand": "api_key_command"}.get(key, key)
    assert getattr(s, field) == getattr(previous, field)
    assert s.context_lines == 12  # the good key in the same layer still applies
    assert len(problems) == 1 and f"'{key}'" in problems[0]
    assert "Keeping" in problems[0]


def test_refused_key_without_previous_value_stays_unset() -> None:
    s, problems = ws({"temperature": 9, "model": "m-new"})
    assert s.temperature is None
    assert s.model == "m-new"
    assert "Keeping unset" in problems[0]


def test_refused_key_beats_valid_lower_layer_with_previous_value() -> None:
    # A bad workspace value must not apply; the previous settings' value stays in force.
    previous = Settings(temperature=0.3)
    resolved = resolve(
        [Layer("initializationOptions", {"temperature": 0.3}),
         Layer("workspace", {"temperature": "hot"})],
        previous,
    )
    assert resolved.settings.temperature == 0.3
    assert any("'temperature'" in p and "workspace" in p for p in resolved.problems)


def test_problem_names_the_layer() -> None:
    resolved = resolve([Layer("initializationOptions", {"topP": 3})])
    assert "initializationOptions" in resolved.problems[0]


def test_several_bad_keys_each_reported() -> None:
    s, problems = ws({"temperature": 3, "topP": 2, "maxTokens": 0, "model": "ok"})
    assert len(problems) == 3
    joined = "\n".join(problems)
    for key in ("'temperature'", "'topP'", "'maxTokens'"):
        assert key in joined
    assert s.model == "ok"


# -- unknown keys --------------------------------------------------------------------------


def test_unknown_key_is_reported_and_ignored() -> None:
    s, problems = ws({"frobnicate": 1, "model": "m"})
    assert s.model == "m"
    assert len(problems) == 1
    assert "'frobnicate'" in problems[0] and "Unknown" in problems[0]


@pytest.mark.parametrize(("typed", "meant"), [("base_url", "baseUrl"), ("TopP", "topP"),
                                              ("max_tokens", "maxTokens")])
def test_unknown_key_with_case_or_underscore_gets_did_you_mean(typed: str, meant: str) -> None:
    _s, problems = ws({typed: 1})
    assert f"did you mean '{meant}'" in problems[0]


@pytest.mark.parametrize(("typed", "meant"), [("temprature", "temperature"), ("modle", "model")])
def test_misspelled_key_gets_did_you_mean(typed: str, meant: str) -> None:
    _s, problems = ws({typed: 1})
    assert f"did you mean '{meant}'" in problems[0]


# -- actions -------------------------------------------------------------------------------


def test_actions_new_and_override_accepted() -> None:
    s, problems = ws({"actions": [
        {"id": "docstring", "title": "Add docstring", "prompt": "Document {selection}",
         "apply": "replace", "temperature": 0.2, "maxTokens": 300},
        {"id": "explain", "prompt": "Explain {selection} in {language} for {fileName}."},
    ]})
    assert problems == ()
    assert s.actions == (
        ActionSetting(id="docstring", title="Add docstring", prompt="Document {selection}",
                      apply="replace", temperature=0.2, max_tokens=300),
        ActionSetting(id="explain",
                      prompt="Explain {selection} in {language} for {fileName}."),
    )


@pytest.mark.parametrize(
    ("actions", "needle"),
    [
        ([{"id": "explain", "prompt": "Explain {code}"}], "{code}"),
        ([{"id": "explain", "prompt": "Explain {selection"}], "actions[0].prompt"),
        ([{"id": "doc", "title": "Doc", "apply": "replace"}], "needs prompt"),
        ([{"id": "doc", "prompt": "x"}], "needs title, apply"),
        ([{"id": "doc", "title": "D", "prompt": "x", "apply": "replace"},
          {"id": "doc", "title": "E", "prompt": "y", "apply": "show"}], "appears twice"),
        ([{"id": "doc", "title": "D", "prompt": "x", "apply": "overwrite"}],
         "apply must be one of show, replace, testFile"),
        ([{"id": "explain", "titel": "Explain!"}], "titel"),
        ([{"id": "1bad", "title": "D", "prompt": "x", "apply": "show"}], "start with a letter"),
        ([{"id": "explain", "temperature": 3}], "actions[0].temperature"),
        ([{"id": "explain", "stop": ["a", "b", "c", "d", "e"]}], "actions[0].stop"),
        ([{"title": "no id"}], "id"),
        ({"id": "explain"}, "actions"),
    ],
)
def test_bad_actions_are_refused(actions: Any, needle: str) -> None:
    previous = Settings(actions=(ActionSetting(id="explain", prompt="old {selection}"),))
    s, problems = ws({"actions": actions, "model": "m"}, previous)
    assert len(problems) == 1
    assert "'actions'" in problems[0]
    assert needle in problems[0]
    assert s.actions == previous.actions
    assert s.model == "m"


def test_unknown_placeholder_message_lists_known_ones() -> None:
    _s, problems = ws({"actions": [{"id": "explain", "prompt": "{selected}"}]})
    assert "unknown placeholder {selected}" in problems[0]
    assert "{selection}" in problems[0]


# -- the API key ---------------------------------------------------------------------------


def test_api_key_hidden_in_repr_str_and_redacted() -> None:
    s, _ = ws({"apiKey": SECRET, "model": "m"})
    assert s.api_key is not None and s.api_key.reveal() == SECRET
    for text in (repr(s), str(s), repr(s.api_key), str(s.api_key),
                 json.dumps(redacted(s)), repr(redacted(s))):
        assert SECRET not in text
    assert redacted(s)["apiKey"] == "***"
    assert redacted(Settings())["apiKey"] is None


def test_redacted_is_json_with_camel_case_keys() -> None:
    s, _ = ws({"stop": ["x"], "actions": [{"id": "explain", "prompt": "{selection}"}]})
    out = redacted(s)
    assert set(out) == set(KEYS)
    assert out["stop"] == ["x"]
    assert out["actions"] == [{"id": "explain", "prompt": "{selection}"}]
    json.dumps(out)


def test_api_key_from_environment_hidden() -> None:
    s = resolve([environment_layer({"OPENAI_API_KEY": SECRET})]).settings
    assert SECRET not in repr(s)
    assert SECRET not in repr(attrs.asdict(s, recurse=False))


@pytest.mark.parametrize("value", [[SECRET], {"value": SECRET}])
def test_refused_api_key_value_is_not_echoed(value: Any) -> None:
    _s, problems = ws({"apiKey": value})
    assert problems and "'apiKey'" in problems[0]
    assert SECRET not in problems[0]


# -- robustness ----------------------------------------------------------------------------


def test_huge_integer_for_float_key_is_refused_not_raised() -> None:
    _s, problems = ws({"temperature": 10**400})
    assert problems and "'temperature'" in problems[0]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=15,
)
action_like = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["explain", "refactor", "doc", "1x"]) | json_values},
        optional={
            "title": st.text(max_size=10) | json_values,
            "prompt": st.sampled_from(["{selection}", "{nope}", "{", "x {{y}}"]) | json_values,
            "apply": st.sampled_from(["show", "replace", "testFile", "bad"]) | json_values,
            "temperature": json_values,
            "stop": json_values,
        },
    ),
    max_size=3,
)


@given(key=st.sampled_from(KEYS), value=json_values | action_like)
def test_any_json_value_is_accepted_or_refused_naming_the_key(key: str, value: Any) -> None:
    previous = Settings(model="m-prev", temperature=0.4)
    resolved = resolve([Layer("workspace", {key: value})], previous)
    assert isinstance(resolved.settings, Settings)
    if value is None:
        assert resolved.problems == ()
    for problem in resolved.problems:
        assert f"'{key}'" in problem
    assert len(resolved.problems) <= 1
    if not resolved.problems and value is not None:
        # Accepted: the value went in, structured.
        accepted = parse_value(key, value)
        field = next(f.name for f in attrs.fields(Settings) if f.name.replace("_", "")
                     == key.lower())
        if key == "contextExclude":  # every layer adds to the defaults
            assert set(accepted) <= set(resolved.settings.context_exclude)
        else:
            assert getattr(resolved.settings, field) == accepted


@given(values=st.dictionaries(st.sampled_from([*KEYS, "bogus", "base_url"]), json_values))
def test_any_layer_resolves_without_exception(values: dict[str, Any]) -> None:
    resolved = resolve([Layer("initializationOptions", values)])
    assert isinstance(resolved.settings, Settings)
    assert len(resolved.problems) <= len(values)


# -- initializationOptions shape -----------------------------------------------------------


def test_unwrap_section_accepts_both_shapes() -> None:
    assert unwrap_section({"lspilot": {"model": "m"}}) == {"model": "m"}
    assert unwrap_section({"model": "m"}) == {"model": "m"}
    assert unwrap_section({"lspilot": {"model": "m"}, "model": "n"}) == {
        "lspilot": {"model": "m"}, "model": "n"
    }
    assert unwrap_section(None) == {}
    assert unwrap_section(["model"]) == {}
