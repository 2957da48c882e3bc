"""What requests cost: token counts, prices, estimates, and the session's totals.

Pure arithmetic and plain data. A price is US dollars per million tokens; a model with no
known price has no cost (``None``), never a made-up one. When the upstream sends no usage
(a cancelled or cut stream, or a server that never sends it) the tokens are estimated from
the text, about four characters a token, and marked ``estimated``: it was billed anyway.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from attrs import define, field

from lspilot.settings import Price

BUILTIN_PRICES: Mapping[str, Price] = {
    "gpt-5-4-mini": Price(input=0.15, output=0.90),
}
# Characters per token for estimates: the usual figure for English and code with BPE
# tokenizers; an estimate is labelled as one, so rough is fine.
CHARS_PER_TOKEN = 4
# Chat formats wrap each message in a few tokens of their own.
TOKENS_PER_MESSAGE = 4


@define(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens,
                     self.estimated or other.estimated)


@define(frozen=True)
class Priced:
    """A usage with its cost in US dollars (None: the model's price is unknown)."""

    usage: Usage
    cost: float | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "promptTokens": self.usage.prompt_tokens,
            "completionTokens": self.usage.completion_tokens,
            "totalTokens": self.usage.total_tokens,
        }
        if self.cost is not None:
            out["cost"] = self.cost
        if self.usage.estimated:
            out["estimated"] = True
        return out

    def describe(self) -> str:
        """``1,234 tokens in, 321 out, $0.0005`` (``~`` before estimated counts)."""
        about = "~" if self.usage.estimated else ""
        words = (f"{about}{self.usage.prompt_tokens:,} tokens in, "
                 f"{about}{self.usage.completion_tokens:,} out")
        return words if self.cost is None else f"{words}, {format_cost(self.cost)}"


def format_cost(cost: float) -> str:
    """The one way lspilot writes dollars (the editors use the same rule): ``$0``, below a
    hundredth of a cent ``<$0.0001``, else four significant digits and at most four
    decimals (``$0.0041``, ``$0.0123``, ``$1.235``, ``$1235``). Unknown cost is the
    caller's to word ("cost unknown")."""
    if cost <= 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    digits = _decimals(cost)
    # Rounding up to the next power of ten (9.99996 -> 10.000) would show a fifth digit.
    digits = _decimals(round(cost, digits))
    return f"${cost:.{digits}f}"


def _decimals(cost: float) -> int:
    return min(4, max(0, 3 - math.floor(math.log10(cost))))


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The user's price for the model, else the built-in one; a provider prefix such as
    ``openai/`` (gateways name models so) falls back to the bare name."""
    for name in (model, model.rsplit("/", 1)[-1]):
        price = prices.get(name) or BUILTIN_PRICES.get(name)
        if price is not None:
            return price
    return None


def cost_of(usage: Usage, price: Price | None) -> float | None:
    if price is None:
        return None
    return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_prompt(pieces: list[str]) -> int:
    """The prompt's tokens, estimated from its messages (or a completion prompt's parts)."""
    return sum(estimate_tokens(piece) + TOKENS_PER_MESSAGE for piece in pieces)


@define
class Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # None until a request with a known price is counted

    def add(self, priced: Priced) -> None:
        self.requests += 1
        self.prompt_tokens += priced.usage.prompt_tokens
        self.completion_tokens += priced.usage.completion_tokens
        if priced.cost is not None:
            self.cost = (self.cost or 0.0) + priced.cost

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "promptTokens": self.prompt_tokens,
                "completionTokens": self.completion_tokens, "cost": self.cost}


# The session's usage as the editors show it: what each kind of request has cost. Every
# other action name (explain, refactor, writeTests and its repair rounds, custom actions) is
# an action.
GROUPS = ("actions", "chat", "ghostText", "nextEdits")
_GROUP_OF_ACTION = {"chat": "chat", "agent": "chat", "inlineCompletion": "ghostText",
                    "nextEdit": "nextEdits"}


def group_of(action: str) -> str:
    return _GROUP_OF_ACTION.get(action, "actions")


@define
class Meter:
    """The session's usage, in all and per model, across actions, completions and chat."""

    total: Totals = field(factory=Totals)
    by_model: dict[str, Totals] = field(factory=dict)
    # By what asked: explain, refactor, chat, inlineCompletion, nextEdit, …
    by_action: dict[str, Totals] = field(factory=dict)

    def record(self, model: str, priced: Priced, action: str | None = None) -> None:
        self.total.add(priced)
        self.by_model.setdefault(model, Totals()).add(priced)
        if action is not None:
            self.by_action.setdefault(action, Totals()).add(priced)

    def over(self, limit: float | None) -> bool:
        return limit is not None and (self.total.cost or 0.0) > limit

    def groups(self, priced: Collection[str] = ()) -> dict[str, Totals]:
        """The totals per group (all four, always). A group in ``priced`` (its model has a
        price) that has asked nothing yet has cost 0, not an unknown one."""
        out = {group: Totals() for group in GROUPS}
        for action, totals in self.by_action.items():
            group = out[group_of(action)]
            group.requests += totals.requests
            group.prompt_tokens += totals.prompt_tokens
            group.completion_tokens += totals.completion_tokens
            if totals.cost is not None:
                group.cost = (group.cost or 0.0) + totals.cost
        for name, group in out.items():
            if group.requests == 0 and name in priced:
                group.cost = 0.0
        return out

    def to_json(self, priced: Collection[str] = ()) -> dict[str, Any]:
        """``priced``: the groups whose model has a price (see ``groups``); the session's
        own cost is 0 before any request when the actions' model has one."""
        out = self.total.to_json()
        if self.total.requests == 0 and "actions" in priced:
            out["cost"] = 0.0
        out["models"] = {model: totals.to_json() for model, totals in self.by_model.items()}
        out["actions"] = {action: totals.to_json()
                          for action, totals in self.by_action.items()}
        out["groups"] = {group: totals.to_json()
                         for group, totals in self.groups(priced).items()}
        return out
