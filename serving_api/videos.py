"""Videos and what is done to them: metadata (``GET``), edits and deletion by the owner (``PATCH``,
``DELETE``), likes, comments and shares. Who calls: serving_api/auth.py. A private video is its owner's
alone: to anyone else every route here answers 404, as for a video that does not exist."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from reelhouse.domain.interactions import PRIVATE
from reelhouse.services.errors import BadRequest, NotFound
from serving_api.auth import platform, principal, spend_budget, viewer
from serving_api.public_urls import site_url, view_for_this_client

bp = Blueprint("videos", __name__)


@bp.get("/videos/<video_id>")
def get_video(video_id: str):
    g.video_id = video_id
    view = platform().videos.view(video_id)
    if view.get("visibility") == PRIVATE and principal().id != view["creator"]["id"]:
        raise NotFound(f"no video with id {video_id!r}", field="video_id", code="unknown_video")
    return jsonify(view_for_this_client(view, platform().settings))


@bp.patch("/videos/<video_id>")
def edit_video(video_id: str):
    g.video_id = video_id
    platform().interactions.edit(principal(), video_id, _json_object(required=True))
    return jsonify(view_for_this_client(platform().videos.view(video_id), platform().settings))


@bp.delete("/videos/<video_id>")
def delete_video(video_id: str):
    g.video_id = video_id
    return jsonify(platform().interactions.delete(principal(), video_id))


@bp.get("/videos/<video_id>/like")
def like_state(video_id: str):
    g.video_id = video_id
    return jsonify(platform().interactions.like_state(principal(), video_id))


@bp.put("/videos/<video_id>/like")
def like(video_id: str):
    g.video_id = video_id
    return jsonify(platform().interactions.set_like(principal(), video_id, True, request.user_agent.string))


@bp.delete("/videos/<video_id>/like")
def unlike(video_id: str):
    g.video_id = video_id
    return jsonify(platform().interactions.set_like(principal(), video_id, False, request.user_agent.string))


@bp.get("/videos/<video_id>/comments")
def comments(video_id: str):
    g.video_id = video_id
    args = request.args
    return jsonify(platform().interactions.comments(video_id, principal().id, args.get("parent_id"),
                                                    args.get("limit", 20), args.get("cursor")))


@bp.post("/videos/<video_id>/comments")
def add_comment(video_id: str):
    g.video_id = video_id
    who = principal()
    if who.is_account:  # an anonymous caller gets its 401 without spending the address's budget
        settings = platform().settings
        spend_budget("comments", settings.comments_rate_limit, settings.comments_rate_window_s, field="text")
    comment = platform().interactions.add_comment(who, video_id, _json_object(required=True),
                                                  request.user_agent.string)
    return jsonify(comment), 201


@bp.delete("/videos/<video_id>/comments/<comment_id>")
def delete_comment(video_id: str, comment_id: str):
    g.video_id = video_id
    return jsonify(platform().interactions.delete_comment(principal(), video_id, comment_id))


@bp.post("/videos/<video_id>/shares")
def share(video_id: str):
    g.video_id = video_id
    settings = platform().settings
    answer = platform().interactions.share(principal(), viewer(), video_id, _json_object(required=False),
                                           request.user_agent.string,
                                           lambda vid: f"{site_url(settings).rstrip('/')}/watch/{vid}")
    return jsonify(answer), 201


def _json_object(required: bool):
    if not request.content_length and not request.data:
        if required:
            raise BadRequest("send a JSON object", field="body")
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body", code="not_json")
    return body
