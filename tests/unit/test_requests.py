"""One request builder: an action's own values first, then the settings, then the caller's."""

from __future__ import annotations

from lspilot.actions.registry import build_registry
from lspilot.llm.wire import ChatMessage, ToolSpec
from lspilot.requests import chat_request
from lspilot.settings import ActionSetting, Settings

MESSAGES = (ChatMessage("user", "hi"),)


def test_every_sampling_setting_reaches_the_request():
    settings = Settings(model="m", temperature=0.3, top_p=0.9, max_tokens=99, stop=("END",))
    request = chat_request(settings, MESSAGES)
    assert (request.model, request.temperature, request.top_p, request.max_tokens,
            request.stop) == ("m", 0.3, 0.9, 99, ("END",))
    assert request.tools is None and request.tool_choice is None


def test_an_actions_own_values_win_and_the_rest_come_from_the_settings():
    settings = Settings(model="m", temperature=0.3, top_p=0.9, stop=("END",),
                        actions=(ActionSetting(id="refactor", temperature=0.0, model="big"),))
    action = build_registry(settings)["refactor"]
    request = chat_request(settings, MESSAGES, action=action)
    assert (request.model, request.temperature, request.top_p, request.stop) == (
        "big", 0.0, 0.9, ("END",))  # the test repair used to drop topP and stop


def test_caller_defaults_apply_only_where_the_settings_are_silent():
    tools = (ToolSpec("read_file", "reads", {"type": "object"}),)
    request = chat_request(Settings(), MESSAGES, temperature=0.0, max_tokens=512, tools=tools,
                           tool_format="prompt")
    assert (request.temperature, request.max_tokens) == (0.0, 512)
    assert request.tool_choice == "auto" and request.tool_format == "prompt"
    assert chat_request(Settings(temperature=1.0), MESSAGES, temperature=0.0).temperature == 1.0
