"""Links a learner's browser can open, also when Jupyter runs on another machine.

The kit's servers answer on 127.0.0.1 of the machine that runs them. When JupyterLab runs
on the learner's laptop, ``http://127.0.0.1:PORT/popular`` opens. When it runs on a remote
server or a JupyterHub, the browser's 127.0.0.1 is the laptop: that link goes nowhere.
The Jupyter ecosystem's answer is jupyter-server-proxy: the Jupyter server forwards
``<its base>/proxy/<port>/<path>`` to ``localhost:<port>/<path>``, behind the login the
learner already has (Dask's dashboard link does the same with
``JUPYTERHUB_SERVICE_PREFIX``). :func:`browser_link` writes a kit URL either way;
``MWKIT_LINKS`` (read in :mod:`mwkit.settings`) chooses:

    auto    the default: through the proxy on a JupyterHub (JUPYTERHUB_SERVICE_PREFIX
            is set), else direct
    direct  http://127.0.0.1:PORT/path, as the servers answer
    proxy   <JUPYTERHUB_SERVICE_PREFIX, else />proxy/PORT/path: a path on the Jupyter
            server whose page the browser shows (the notebook's IFrames open it)
    a base  Jupyter's address as the browser sees it, ending in "/" (a URL such as
            https://lab.example.org/ or a path such as /user/me/): <base>proxy/PORT/path,
            a whole link, also to click in a terminal

Only loopback URLs are rewritten: the proxy reaches only the Jupyter server's own ports.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mwkit.errors import SettingsError

MODES = ("auto", "direct", "proxy")
LOOPBACK = ("127.0.0.1", "localhost")


def check(links: str) -> str:
    """``links`` if it is a mode or a base, else a SettingsError that lists the forms."""
    if links in MODES or (links.endswith("/") and links.startswith(("/", "http://",
                                                                     "https://"))):
        return links
    raise SettingsError(f"links (MWKIT_LINKS) must be {', '.join(MODES)} or Jupyter's base "
                        f"address ending in '/' (https://lab.example.org/, /user/me/), not "
                        f"{links!r}")


def proxy_base(links: str, hub_prefix: str | None = None) -> str | None:
    """Where proxied links start (``/``, ``/user/me/``, ``https://...``), or None for
    direct links; ``hub_prefix`` is JUPYTERHUB_SERVICE_PREFIX."""
    if links == "direct" or (links == "auto" and not hub_prefix):
        return None
    if links in MODES:  # auto on a hub, or proxy
        base = hub_prefix or "/"
        return base if base.endswith("/") else base + "/"
    return links


def browser_link(url: str, settings=None) -> str:
    """The link a browser should open for ``url``, a kit server's ``http://127.0.0.1:PORT/...``.

    ``settings`` default to ``Settings.from_env()``. A URL that is not on loopback, or has
    no port, is returned as it is.
    """
    if settings is None:
        from mwkit.settings import Settings

        settings = Settings.from_env()
    base = proxy_base(settings.links, settings.hub_prefix)
    parts = urlsplit(url)
    if base is None or parts.hostname not in LOOPBACK or parts.port is None:
        return url
    link = f"{base}proxy/{parts.port}/{parts.path.lstrip('/')}"
    return link + (f"?{parts.query}" if parts.query else "") + \
        (f"#{parts.fragment}" if parts.fragment else "")
