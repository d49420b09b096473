"""Video metadata for players and creators."""
from __future__ import annotations

from flask import Blueprint, g, jsonify

from serving_api.auth import platform
from serving_api.public_urls import view_for_this_client

bp = Blueprint("videos", __name__)


@bp.get("/videos/<video_id>")
def get_video(video_id: str):
    g.video_id = video_id
    return jsonify(view_for_this_client(platform().videos.view(video_id), platform().settings))
