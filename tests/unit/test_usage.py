"""Prices, costs, estimates and the session's totals."""

from __future__ import annotations

import pytest

from lspilot.settings import Price
from lspilot.usage import (
    Meter,
    Priced,
    Usage,
    cost_of,
    estimate_prompt,
    estimate_tokens,
    format_cost,
    price_for,
)


def test_the_default_model_has_its_price() -> None:
    price = price_for("gpt-5-4-mini", {})
    assert price == Price(0.15, 0.90)
    assert cost_of(Usage(1_000_000, 1_000_000), price) == pytest.approx(1.05)
    assert cost_of(Usage(1000, 200), price) == pytest.approx(0.00015 + 0.00018)


def test_user_prices_win_and_provider_prefixes_fall_back() -> None:
    mine = {"gpt-5-4-mini": Price(1, 2), "local-llama": Price(0, 0)}
    assert price_for("gpt-5-4-mini", mine) == Price(1, 2)
    assert price_for("openai/gpt-5-4-mini", {}) == Price(0.15, 0.90)
    assert price_for("local-llama", mine) == Price(0, 0)
    assert price_for("mystery", mine) is None
    assert cost_of(Usage(10, 10), None) is None


def test_estimates_are_about_four_characters_a_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    assert estimate_prompt(["abcd", "abcdefgh"]) == 1 + 2 + 2 * 4


@pytest.mark.parametrize("cost, shown", [
    (0, "$0"), (0.00005, "<$0.0001"), (0.0001, "$0.0001"), (0.0005, "$0.0005"),
    (0.000123, "$0.0001"), (0.0041, "$0.0041"), (0.004123, "$0.0041"), (0.01234, "$0.0123"),
    (0.5, "$0.5000"), (1.2346, "$1.235"), (12.346, "$12.35"), (1234.6, "$1235"),
    (9.99996, "$10.00"), (123456.0, "$123456")])
def test_costs_are_shown_with_the_digits_that_matter(cost: float, shown: str) -> None:
    assert format_cost(cost) == shown


def test_the_json_and_words_of_a_usage() -> None:
    priced = Priced(Usage(1234, 321), 0.0005)
    assert priced.to_json() == {"promptTokens": 1234, "completionTokens": 321,
                                "totalTokens": 1555, "cost": 0.0005}
    assert priced.describe() == "1,234 tokens in, 321 out, $0.0005"
    guessed = Priced(Usage(10, 5, estimated=True), None)
    assert guessed.to_json() == {"promptTokens": 10, "completionTokens": 5,
                                 "totalTokens": 15, "estimated": True}
    assert guessed.describe() == "~10 tokens in, ~5 out"


def test_the_meter_adds_up_per_model_and_in_all() -> None:
    meter = Meter()
    assert not meter.over(0.0)  # nothing spent yet
    meter.record("a", Priced(Usage(10, 1), 0.25))
    meter.record("b", Priced(Usage(5, 5), None))
    meter.record("a", Priced(Usage(1, 1), 0.5))
    total = meter.to_json()
    assert (total["requests"], total["promptTokens"], total["completionTokens"]) == (3, 16, 7)
    assert total["cost"] == pytest.approx(0.75)
    assert total["models"]["b"]["cost"] is None and total["models"]["a"]["requests"] == 2
    assert meter.over(0.7) and not meter.over(0.75) and not meter.over(None)


def test_the_groups_are_what_editors_show_and_always_all_four() -> None:
    meter = Meter()
    for action, cost in [("explain", 0.1), ("writeTests", 0.2), ("myAction", 0.3),
                         ("chat", 1.0), ("agent", 2.0), ("inlineCompletion", 0.01),
                         ("nextEdit", None)]:
        meter.record("m", Priced(Usage(1, 1), cost), action)
    groups = meter.groups()
    assert groups["actions"].requests == 3 and groups["actions"].cost == pytest.approx(0.6)
    assert groups["chat"].requests == 2 and groups["chat"].cost == pytest.approx(3.0)
    assert groups["ghostText"].cost == pytest.approx(0.01)
    assert groups["nextEdits"].requests == 1 and groups["nextEdits"].cost is None
    fresh = Meter().to_json(priced={"actions", "chat"})
    assert fresh["cost"] == 0.0
    assert [fresh["groups"][g]["cost"] for g in ("actions", "chat", "ghostText", "nextEdits")] \
        == [0.0, 0.0, None, None]
    assert Meter().to_json()["cost"] is None
