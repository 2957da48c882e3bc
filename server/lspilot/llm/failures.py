"""What went wrong, as typed errors: from a status and body, from an exception and the
exceptions that caused it, or from an answer that is not the API's. Pure functions.

Every text that came from the upstream is scrubbed of the key before it is stored.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import socket
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from lspilot.llm import errors
from lspilot.llm.endpoint import Endpoint
from lspilot.llm.wire import parse_error


def status_error(
    status: int, headers: httpx.Headers, body: bytes, endpoint: Endpoint
) -> errors.UpstreamError:
    """The error for a response that is not 2xx."""
    detail = scrub(_error_detail(body), endpoint)
    said = f": {detail}" if detail else ""
    host = endpoint.host
    if 300 <= status < 400:
        target = headers.get("location", "another address")
        return errors.InvalidResponse(
            f"{host} redirected the request ({status}) to {target}.",
            status=status,
            hint="Set baseUrl to the final address; redirects are not followed so that "
            "the API key never goes to another host.",
            detail=detail,
        )
    if status in (400, 422):
        return errors.BadRequest(f"{host} refused the request ({status}){said}", status=status,
                                 detail=detail)
    if status in (401, 403):
        return errors.AuthenticationFailed(
            f"{host} refused the API key ({status}){said}",
            status=status,
            hint=f"Set a valid key for {host} with {errors.SET_KEY_WAYS}.",
            detail=detail,
        )
    if status == 404:
        return errors.NotFound(
            f"{host} answered 404 Not Found{said}",
            status=status,
            hint="Check the model name (setting model) and that baseUrl ends in the API's "
            "version path, e.g. https://api.openai.com/v1.",
            detail=detail,
        )
    if status == 429:
        return errors.RateLimited(
            f"{host} is rate limiting (429){said}",
            status=status,
            retry_after=retry_after(headers),
            hint="Wait a little, or lower maxConcurrentRequests.",
            detail=detail,
        )
    if status in (408, 409) or status >= 500:
        return errors.ServerFailed(
            f"{host} failed ({status}){said}",
            status=status,
            retry_after=retry_after(headers),
            detail=detail,
        )
    return errors.InvalidResponse(f"{host} answered {status}{said}", status=status,
                                  detail=detail)


def connect_error(exc: httpx.HTTPError, endpoint: Endpoint) -> errors.UpstreamError:
    """The error for a request that got no answer at all."""
    if isinstance(exc, httpx.ConnectTimeout):
        return errors.TimedOut(
            f"Could not connect to {endpoint.host} within {endpoint.connect_timeout:g} s.",
            hint="Check baseUrl and your network, or raise connectTimeout.",
        )
    if isinstance(exc, httpx.ReadTimeout):
        # httpx reads only once the whole request is written: the upstream has it.
        return queueing(endpoint, f"sent nothing for {endpoint.idle_timeout:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return errors.TimedOut(
            f"{endpoint.host} did not answer within {endpoint.idle_timeout:g} s.",
            hint="The idle time-out is the setting idleTimeout.",
        )
    reason, hint = _describe_connect_error(exc, endpoint)
    return errors.ConnectFailed(f"Could not reach {endpoint.host}: {reason}.", hint=hint)


def queueing(endpoint: Endpoint, what: str, partial_text: str = "") -> errors.TimedOut:
    """The upstream took the request and then ``what``: the sign of a queue in front of the
    model (a gateway holding requests over a rate limit), or of an overloaded one."""
    return errors.TimedOut(
        f"{endpoint.host} took the request but {what}: the upstream is queueing or rate "
        "limiting it, or is overloaded.",
        accepted=True,
        hint="lspilot sends a request the upstream took at most twice, as each may be "
        "billed. Try again later, or raise idleTimeout above the gateway's queueing time.",
        partial_text=partial_text,
    )


def headers_too_slow(endpoint: Endpoint, seconds: float) -> errors.TimedOut:
    return errors.TimedOut(
        f"{endpoint.host} did not finish sending its response headers within {seconds:g} s "
        "(connectTimeout + idleTimeout).",
        accepted=True,
        hint="Check baseUrl: something between lspilot and the model answers very slowly.",
    )


def invalid_text(payload: Any, endpoint: Endpoint) -> errors.InvalidText:
    """The request holds a lone surrogate: say where in one line, never the whole text."""
    match = next(filter(None, map(_SURROGATE.search, _strings(payload))), None)
    where = ""
    if match is not None:
        text = match.string
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[max(line_start, match.start() - 40):match.start()]
        shown = scrub(before, endpoint).encode("utf-8", "backslashreplace").decode()
        where = f" (U+{ord(match.group()):04X}" + (f", after {shown!r})" if shown else ")")
    return errors.InvalidText(
        f"The text to send holds a lone surrogate{where}, which is not valid Unicode; "
        "nothing was sent.",
        hint="Delete or retype that character in the document (or #file:) it came from; a "
        "tool that split a character into UTF-16 halves wrote it.",
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def read_error(
    exc: httpx.HTTPError, endpoint: Endpoint, partial_text: str
) -> errors.UpstreamError:
    """The error for an answer whose body failed while it was being read.

    Before any text, a dropped connection is a connection failure (retried); after
    some, the stream broke (never retried: the text was handed on).
    """
    if isinstance(exc, httpx.TimeoutException):
        return errors.TimedOut(
            f"{endpoint.host} sent nothing for {endpoint.idle_timeout:g} s "
            "(the idle time-out, setting idleTimeout).",
            accepted=True,  # its headers came: it has the request
            partial_text=partial_text,
        )
    if isinstance(exc, httpx.DecodingError):
        return errors.InvalidResponse(
            f"{endpoint.host} sent a body that could not be decoded ({_plain_reason(exc)}).",
            partial_text=partial_text,
        )
    cls = errors.StreamBroken if partial_text else errors.ConnectFailed
    return cls(f"The connection to {endpoint.host} dropped mid-stream.",
               partial_text=partial_text)


def not_the_api(
    api_name: str, answer: str, content_type: str, body: bytes, endpoint: Endpoint
) -> errors.UpstreamError:
    """A 2xx answer that is not ``api_name``'s: a login page, a proxy's notice."""
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return errors.InvalidResponse(
            f"{endpoint.host} answered with a web page, not {api_name}.",
            hint="Check baseUrl: it should be the API root, e.g. https://api.openai.com/v1.",
        )
    shown = scrub(_plain(body.decode("utf-8", errors="replace")), endpoint)[:80]
    return errors.InvalidResponse(
        f"{endpoint.host} answered with something that is not {answer} "
        f"({content_type or 'unknown'}): {shown!r}",
        hint="Check that baseUrl points at an OpenAI-compatible API.",
    )


# Headers that say how long to wait before sending again, in the order they are read: the
# answering server's own first, then the provider's as a gateway passes them on (LiteLLM
# prefixes a backend's headers with "llm_provider-"). `retry-after-ms` is OpenAI's, read
# first as openai-python does. Not read: `x-ratelimit-reset-*`, the time until a quota is
# whole again, which is not when one request may go.
_RETRY_AFTER_PREFIXES = ("", "llm_provider-")


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the upstream asks us to wait, from the first header that says it."""
    for prefix in _RETRY_AFTER_PREFIXES:
        seconds = _retry_after(headers, prefix)
        if seconds is not None:
            return seconds
    return None


def _retry_after(headers: httpx.Headers, prefix: str) -> float | None:
    if (ms := headers.get(prefix + "retry-after-ms")) is not None:
        try:
            if (seconds := _seconds(float(ms) / 1000)) is not None:
                return seconds
        except ValueError:
            pass
    value = headers.get(prefix + "retry-after")
    if value is None:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    when: datetime
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _seconds(value: float) -> float | None:
    # "nan" and "inf" parse as floats: not a wait anyone meant.
    return max(0.0, value) if math.isfinite(value) else None


def scrub(text: str, endpoint: Endpoint) -> str:
    """Never pass the key on, even where an upstream echoes it back."""
    key = endpoint.api_key
    if key and key in text:
        text = text.replace(key, "***")
    return text


def quote(data: str, endpoint: Endpoint) -> str:
    """A piece of an unexpected answer, short and scrubbed, to show in a message."""
    return repr(scrub(data, endpoint)[:80])


def _error_detail(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return _plain(text)
    if isinstance(data, dict):
        inner = data.get("error", data)
        message = parse_error(inner).message
        if message:
            return message[:500]
    return _plain(text)


def _plain(text: str) -> str:
    """An HTML error page or plain text, cut down to one readable line."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:200]


def _describe_connect_error(exc: httpx.HTTPError, endpoint: Endpoint) -> tuple[str, str]:
    """Why a connection failed, and what to do: by the exceptions that caused it."""
    causes = list(_cause_chain(exc))
    proxy = _proxy_for(endpoint.base_url)
    if proxy is not None and (isinstance(exc, httpx.ProxyError) or any(
            isinstance(c, ConnectionRefusedError | socket.gaierror) for c in causes)):
        return (f"the proxy {_without_credentials(proxy)} did not let the request through "
                f"({_plain_reason(exc)})",
                "The proxy comes from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY: check it, or add "
                "the host to NO_PROXY.")
    certificate = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if certificate is not None:
        detail = certificate.verify_message or "not trusted"
        return (f"its TLS certificate could not be verified ({detail})",
                "If your network has its own certificate authority, set SSL_CERT_FILE to its "
                "bundle (PEM); verifyTls: false turns the check off for a server you trust.")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "the host name does not resolve", "Check the setting baseUrl and your network."
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return ("the connection was refused",
                "Check the setting baseUrl and that the server is running.")
    return _plain_reason(exc), "Check the setting baseUrl and that the server is running."


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _plain_reason(exc: BaseException) -> str:
    # Shown, never matched on: what a failure is comes from its type and its causes.
    return str(exc) or type(exc).__name__


def _proxy_for(url: str) -> str | None:
    """The proxy httpx takes from the environment for ``url``, as it would choose it."""
    parts = urlsplit(url)
    # In urllib since Python 3.0, but not in its type stubs.
    bypass: Callable[[str], bool] = getattr(  # noqa: B009
        urllib.request, "proxy_bypass_environment")
    if bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _without_credentials(proxy: str) -> str:
    parts = urlsplit(proxy)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
