import pytest

from reelhouse.domain.videos import InvalidTransition, Stage, Video, VideoStatus, check_transition

S, T = VideoStatus, Stage


@pytest.mark.parametrize("frm,to", [
    ((S.UPLOADING, None), (S.PROCESSING, T.PROBING)),
    ((S.PROCESSING, T.PROBING), (S.PROCESSING, T.QUEUED)),
    ((S.PROCESSING, T.PROBING), (S.REJECTED, None)),
    ((S.PROCESSING, T.QUEUED), (S.PROCESSING, T.TRANSCODING)),
    ((S.PROCESSING, T.TRANSCODING), (S.READY, None)),
    ((S.PROCESSING, T.TRANSCODING), (S.FAILED, None)),
    ((S.UPLOADING, None), (S.FAILED, None)),
])
def test_allowed_transitions(frm, to):
    check_transition(*frm, *to)


@pytest.mark.parametrize("frm,to", [
    ((S.UPLOADING, None), (S.READY, None)),
    ((S.UPLOADING, None), (S.PROCESSING, T.QUEUED)),
    ((S.PROCESSING, T.QUEUED), (S.REJECTED, None)),
    ((S.READY, None), (S.PROCESSING, T.QUEUED)),
    ((S.REJECTED, None), (S.PROCESSING, T.PROBING)),
    ((S.FAILED, None), (S.READY, None)),
])
def test_forbidden_transitions_say_which(frm, to):
    with pytest.raises(InvalidTransition, match=frm[0].value):
        check_transition(*frm, *to)


def test_video_round_trips_through_dict():
    video = Video(id="v1", creator_id="c1", title="t", filename="f.mp4", size=10, tags=["a"],
                  status="processing", stage="queued", media_info={"codec": "h264"})
    again = Video.from_dict(video.to_dict())
    assert again == video and again.status is S.PROCESSING and again.stage is T.QUEUED
