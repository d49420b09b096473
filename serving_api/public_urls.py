"""The addresses clients are told (tus ``Location``, watch and media URLs): the ones they used.

A client reaches the API through nginx (the CDN tier, ``infra/nginx``) or, on this machine,
directly. Behind a trusted proxy (``Settings.trusted_proxies``), werkzeug's ``ProxyFix`` has put
what the proxy forwarded (``X-Forwarded-Proto/Host/Port/For``) in place of the request's own
scheme, host, port and remote address, so ``request.host_url`` is the address the client typed
on either path, and a tus client's PATCHes follow its upload's ``Location`` back through nginx.

- Site URLs (``Location``, ``watch_url``): ``public_url`` when set, else the client's address.
- Media URLs (playback, poster, sprite): ``cdn_public_url`` when set; else, for a client that came
  through the proxy, the site's address (nginx serves and caches ``/media/`` there); for a direct
  client, the local nginx (``Settings.cdn_url``): the API port itself caches nothing.

The video view is cached with the URLs the settings give (``reelhouse.services.videos``); each
answer re-bases them for its client here, so no client's address ever lands in a cache.
"""
from __future__ import annotations

from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

from reelhouse.services.videos import playback_urls
from reelhouse.settings import Settings


def behind_proxies(wsgi_app, trusted_proxies: int):
    """``wsgi_app`` believing the ``X-Forwarded-*`` headers of that many proxies (none for 0)."""
    if trusted_proxies <= 0:
        return wsgi_app
    hops = trusted_proxies
    return ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def came_through_proxy(settings: Settings) -> bool:
    return settings.trusted_proxies > 0 and "X-Forwarded-For" in request.headers


def site_url(settings: Settings) -> str:
    return (settings.public_url or request.host_url).rstrip("/")


def media_url(settings: Settings) -> str:
    if settings.cdn_public_url:
        return settings.cdn_public_url.rstrip("/")
    if came_through_proxy(settings):
        return site_url(settings)
    return settings.cdn_url


def view_for_this_client(view: dict, settings: Settings) -> dict:
    """A video view whose URLs (present once the video is ready) are on this client's addresses."""
    if not view.get("playback_url"):
        return view
    addressed = settings.model_copy(update={"public_url": site_url(settings), "cdn_public_url": media_url(settings)})
    return {**view, **playback_urls(addressed, view["id"])}
