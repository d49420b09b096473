"""The URLs a client is told, built from the address it used (serving_api/public_urls.py).

A bare Flask app with the same ProxyFix wiring as the API answers, for each request, the site and
media URLs and the re-based view of a ready video; the Flask test client plays nginx (sending
X-Forwarded-*) or a direct client.
"""
from __future__ import annotations

import pytest
from flask import Flask, jsonify, request

from reelhouse.settings import Settings
from serving_api.public_urls import behind_proxies, media_url, site_url, view_for_this_client

# What nginx sends for a client that reached it as https://videos.example:8443 from 203.0.113.7
# (its X-Forwarded-For appended to one the client sent itself).
THROUGH_NGINX = {
    "X-Forwarded-For": "198.51.100.99, 203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "videos.example:8443",
    "X-Forwarded-Port": "8443",
}
CACHED_VIEW = {  # as the service caches it: URLs from the settings, whoever asked first
    "id": "v123", "status": "ready",
    "playback_url": "http://127.0.0.1:8780/media/v123/hls/master.m3u8",
    "poster_url": "http://127.0.0.1:8780/media/v123/poster.jpg",
    "sprite_vtt_url": "http://127.0.0.1:8780/media/v123/sprite.vtt",
    "watch_url": "http://127.0.0.1:8700/watch/v123",
}


def _client(settings: Settings):
    app = Flask(__name__)

    @app.get("/urls")
    def urls():
        return jsonify(site=site_url(settings), media=media_url(settings), client=request.remote_addr,
                       view=view_for_this_client(dict(CACHED_VIEW), settings))

    app.wsgi_app = behind_proxies(app.wsgi_app, settings.trusted_proxies)
    return app.test_client()


def _urls(settings: Settings, headers: dict, base_url: str = "http://127.0.0.1:8700") -> dict:
    return _client(settings).get("/urls", headers=headers, base_url=base_url,
                                 environ_base={"REMOTE_ADDR": "127.0.0.1"}).json


def test_through_one_trusted_proxy_every_url_is_on_the_address_the_client_used():
    answer = _urls(Settings(trusted_proxies=1), THROUGH_NGINX)

    assert answer["site"] == "https://videos.example:8443"
    assert answer["media"] == "https://videos.example:8443"
    assert answer["client"] == "203.0.113.7"  # the address nginx saw, not the one the client claimed
    assert answer["view"] == {
        "id": "v123", "status": "ready",
        "playback_url": "https://videos.example:8443/media/v123/hls/master.m3u8",
        "poster_url": "https://videos.example:8443/media/v123/poster.jpg",
        "sprite_vtt_url": "https://videos.example:8443/media/v123/sprite.vtt",
        "watch_url": "https://videos.example:8443/watch/v123",
    }


def test_a_default_port_is_left_out_of_the_urls():
    answer = _urls(Settings(trusted_proxies=1), {**THROUGH_NGINX, "X-Forwarded-Host": "videos.example",
                                                 "X-Forwarded-Port": "443"})

    assert answer["site"] == answer["media"] == "https://videos.example"


def test_with_no_trusted_proxy_forwarded_headers_are_ignored():
    answer = _urls(Settings(trusted_proxies=0, nginx_port=8780), THROUGH_NGINX)

    assert answer["site"] == "http://127.0.0.1:8700"  # the address this request really came to
    assert answer["media"] == "http://127.0.0.1:8780"  # the local nginx: the API port caches nothing
    assert answer["client"] == "127.0.0.1"
    assert answer["view"]["watch_url"] == "http://127.0.0.1:8700/watch/v123"
    assert answer["view"]["playback_url"] == "http://127.0.0.1:8780/media/v123/hls/master.m3u8"


def test_a_direct_client_gets_site_urls_on_the_host_it_used_and_media_on_the_local_nginx():
    answer = _urls(Settings(trusted_proxies=1, nginx_port=8780), {}, base_url="http://api.internal:8700")

    assert answer["site"] == "http://api.internal:8700"
    assert answer["media"] == "http://127.0.0.1:8780"


@pytest.mark.parametrize("trusted", [0, 1])
def test_configured_public_addresses_win(trusted):
    settings = Settings(trusted_proxies=trusted, public_url="https://reelhouse.example/",
                        cdn_public_url="https://cdn.example/")

    for headers in (THROUGH_NGINX, {}):
        answer = _urls(settings, headers)
        assert answer["site"] == "https://reelhouse.example"
        assert answer["media"] == "https://cdn.example"
        assert answer["view"]["watch_url"] == "https://reelhouse.example/watch/v123"
        assert answer["view"]["poster_url"] == "https://cdn.example/media/v123/poster.jpg"


def test_a_video_not_ready_keeps_its_empty_urls():
    settings = Settings(trusted_proxies=1)
    view = {"id": "v9", "status": "processing", "playback_url": None, "watch_url": None}
    app = Flask(__name__)
    with app.test_request_context("/", headers=THROUGH_NGINX):
        assert view_for_this_client(view, settings) == view
