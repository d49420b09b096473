"""The watch page (``/watch/<video_id>``) and the player script it loads.

hls.js comes from ``web/node_modules`` (pinned by web/package-lock.json, installed by
``make deps``) and is served by this app: a page never depends on a CDN or a download.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, render_template, send_from_directory

from reelhouse.services.errors import NotFound
from reelhouse.domain.interactions import PRIVATE
from serving_api.auth import platform, principal
from serving_api.problems import problem
from serving_api.public_urls import media_url, view_for_this_client

bp = Blueprint("watch", __name__)

HLS_DIST = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "hls.js" / "dist"


@bp.get("/watch/<video_id>")
def watch(video_id: str):
    g.video_id = video_id
    try:
        view = platform().videos.view(video_id)
        if view.get("visibility") == PRIVATE and principal().id != view["creator"]["id"]:
            raise NotFound(f"no video with id {video_id!r}")
    except NotFound:
        page = render_template("watch_missing.html", video_id=video_id)
        return page, 404, {"Cache-Control": "no-store"}
    settings = platform().settings
    page = render_template("watch.html", view=view_for_this_client(view, settings), cdn_url=media_url(settings))
    # The page embeds the video's status; a cached copy would show "processing" forever.
    return page, 200, {"Cache-Control": "no-cache"}


@bp.get("/static/vendor/hls.min.js")
def hls_js():
    if not (HLS_DIST / "hls.min.js").is_file():
        return problem(503, "player_not_installed",
                       f"hls.js is not installed in {HLS_DIST.parents[2]}: run `make deps` "
                       "(npm ci in web/)")
    return send_from_directory(HLS_DIST, "hls.min.js", mimetype="text/javascript")
