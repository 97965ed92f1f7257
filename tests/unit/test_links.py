"""mwkit.links: which link a browser gets for a kit URL, direct or through Jupyter's proxy."""

from __future__ import annotations

import pytest

from mwkit.errors import SettingsError
from mwkit.links import browser_link
from mwkit.settings import Settings

URL = "http://127.0.0.1:8123/popular?refresh=1"
HUB = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}


def link(url: str = URL, **env: str) -> str:
    return browser_link(url, Settings.from_env(env))


def test_direct_by_default_on_a_laptop():
    assert link() == URL
    assert link(MWKIT_LINKS="direct", **HUB) == URL


def test_through_the_hubs_proxy_on_a_jupyterhub():
    assert link(**HUB) == "/user/alice/proxy/8123/popular?refresh=1"
    assert link(JUPYTERHUB_SERVICE_PREFIX="/user/bob") == "/user/bob/proxy/8123/popular?refresh=1"


def test_proxy_on_a_plain_remote_jupyter_is_relative_to_its_root():
    assert link(MWKIT_LINKS="proxy") == "/proxy/8123/popular?refresh=1"
    assert link(MWKIT_LINKS="proxy", **HUB) == "/user/alice/proxy/8123/popular?refresh=1"


def test_a_base_address_gives_whole_links():
    base = "https://lab.example.org/jupyter/"
    assert link(MWKIT_LINKS=base, **HUB) == f"{base}proxy/8123/popular?refresh=1"
    assert link(MWKIT_LINKS="/me/") == "/me/proxy/8123/popular?refresh=1"


@pytest.mark.parametrize("url, proxied", [
    ("http://127.0.0.1:8123", "/proxy/8123/"),
    ("http://127.0.0.1:8123/", "/proxy/8123/"),
    ("http://localhost:8123/a/b.json#top", "/proxy/8123/a/b.json#top"),
])
def test_paths_queries_and_fragments_survive(url, proxied):
    assert link(url, MWKIT_LINKS="proxy") == proxied


@pytest.mark.parametrize("url", [
    "http://10.1.2.3:8123/popular",  # not on this machine's loopback: the proxy cannot reach it
    "https://example.org/popular",   # no port
    "http://127.0.0.1/popular",
])
def test_other_urls_stay_as_they_are(url):
    assert link(url, MWKIT_LINKS="proxy") == url


@pytest.mark.parametrize("value", ["proxied", "https://lab.example.org", "lab/", "PROXY"])
def test_a_wrong_setting_is_refused_with_the_forms(value):
    with pytest.raises(SettingsError, match="auto, direct, proxy or Jupyter's base"):
        Settings.from_env({"MWKIT_LINKS": value})


def test_the_environment_is_read_by_the_settings():
    settings = Settings.from_env({"MWKIT_LINKS": "proxy", **HUB})
    assert (settings.links, settings.hub_prefix) == ("proxy", "/user/alice/")
    assert (Settings().links, Settings().hub_prefix) == ("auto", None)
