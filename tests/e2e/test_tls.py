"""Certificates are verified by default; turning that off is loud."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import range_of, session
from tests.fake_upstream import FakeUpstream, Reply

SOURCE = "x = 1\n"


@pytest.fixture
def https_upstream(tmp_path: Path):
    """The fake upstream over HTTPS with a self-signed certificate nobody trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with FakeUpstream(ssl_context=context) as upstream:
        upstream.cert_file = cert
        yield upstream


async def test_an_untrusted_certificate_is_refused(https_upstream, workspace):
    async with session(https_upstream, workspace, init_options={"maxRetries": 0}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, "x = 1"))
        assert result["status"] == "failed"
        assert result["error"]["type"] == "connection"
        message = result["error"]["message"]
        assert "certificate" in message and "self-signed" in message, message
        assert "SSL_CERT_FILE" in message  # the fix for a network with its own authority
        assert "baseUrl" not in message
        assert not https_upstream.requests  # nothing, the key included, was sent


async def test_ssl_cert_file_adds_a_trusted_authority(https_upstream, workspace):
    https_upstream.enqueue(Reply.stream(["trusted by SSL_CERT_FILE"]))
    env = {"SSL_CERT_FILE": str(https_upstream.cert_file)}
    async with session(https_upstream, workspace, env=env) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, "x = 1"))
        assert result["status"] == "done", result
        assert result["text"] == "trusted by SSL_CERT_FILE"


async def test_verify_tls_off_works_and_warns_on_start(https_upstream, workspace):
    https_upstream.enqueue(Reply.stream(["trusted anyway"]))
    async with session(https_upstream, workspace, init_options={"verifyTls": False}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, "x = 1"))
        assert result["status"] == "done" and result["text"] == "trusted anyway"
        warnings = [m.message for m in editor.client.log_messages]
        assert any("TLS certificate checks are off" in w for w in warnings), warnings
