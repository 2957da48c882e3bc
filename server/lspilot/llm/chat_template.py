"""A bundled model's chat template, applied by lspilot to prefill the assistant's answer.

llama.cpp's chat endpoint applies the template itself but lets nobody start the answer.
Its raw completion endpoint (``POST /completions``) continues any text: lspilot writes the
conversation in the model's own turn format and the start of the answer (a fence, an
import, ``def test_``), and the model goes on from there. Only formats lspilot knows are
written here; a model whose format is unknown gets the chat endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from lspilot.llm.wire import ChatMessage

ChatTemplate = Literal["chatml"]

# Where an answer in the format ends (the turn's end, the text's end).
STOPS: dict[str, tuple[str, ...]] = {"chatml": ("<|im_end|>", "<|endoftext|>")}


def render(template: ChatTemplate, messages: Sequence[ChatMessage], prefill: str) -> str:
    """The conversation in ``template``'s turn format, the assistant's turn begun with
    ``prefill``: what the raw completion endpoint continues."""
    # ChatML, as Qwen2.5's template writes it (without tools): one turn per message.
    turns = [f"<|im_start|>{m.role}\n{m.content or ''}<|im_end|>\n" for m in messages]
    return "".join(turns) + "<|im_start|>assistant\n" + prefill
