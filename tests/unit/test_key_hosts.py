"""When the workspace settings move a key to another host."""

from __future__ import annotations

from lspilot.key_hosts import AllowedHosts, Redirect, redirect


def test_only_a_key_set_elsewhere_moving_to_another_host_is_a_redirect():
    user, other = "https://api.openai.com/v1", "https://evil.example/v1"
    assert redirect(user, other, key_from_workspace=False, has_key=True) == Redirect(
        "api.openai.com", "evil.example")
    assert redirect(user, user + "/", key_from_workspace=False, has_key=True) is None
    assert redirect(user, other, key_from_workspace=True, has_key=True) is None  # its own key
    assert redirect(user, other, key_from_workspace=False, has_key=False) is None  # no key


def test_allowed_hosts_persist_owner_only(tmp_path):
    path = tmp_path / "lspilot" / "allowed.json"
    hosts = AllowedHosts(path)
    assert not hosts.allows("a.example")
    hosts.allow("a.example")
    assert AllowedHosts(path).allows("a.example")
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("not json")
    assert not AllowedHosts(path).allows("a.example")  # a broken file allows nothing
