"""Which renditions a source gets: by the short side, never upscaled, orientation kept, even sizes."""
import pytest

from media_workers.adapters.ladder import gop_frames, output_frame_rate, plan_ladder


def sizes(plan):
    return [(r.name, r.width, r.height) for r in plan]


def test_1080p_landscape_gets_the_full_ladder_below_it():
    assert sizes(plan_ladder(1920, 1080)) == [
        ("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360),
        ("240p", 426, 240), ("144p", 256, 144)]


def test_portrait_stays_portrait_sized_by_its_short_side():
    assert sizes(plan_ladder(720, 1280)) == [
        ("720p", 720, 1280), ("480p", 480, 854), ("360p", 360, 640), ("240p", 240, 426), ("144p", 144, 256)]


def test_never_upscaled_and_2160p_only_from_2160p_sources():
    assert [r.name for r in plan_ladder(1280, 720)] == ["720p", "480p", "360p", "240p", "144p"]
    assert [r.name for r in plan_ladder(3840, 2160)][:2] == ["2160p", "1080p"]
    assert "2160p" not in [r.name for r in plan_ladder(3840, 2158)]
    # A cinema-scope 1920x800 has a short side of 800: 720p is its top rung, aspect kept.
    assert sizes(plan_ladder(1920, 800))[0] == ("720p", 1728, 720)


def test_a_source_below_144p_gets_one_rendition_at_its_own_even_size():
    assert sizes(plan_ladder(175, 99)) == [("98p", 174, 98)]
    assert sizes(plan_ladder(100, 140)) == [("100p", 100, 140)]


@pytest.mark.parametrize("width,height", [(1920, 1080), (1080, 1920), (1440, 1080), (854, 480), (1000, 1001),
                                          (3840, 1608), (333, 777)])
def test_every_size_is_even_and_keeps_the_aspect(width, height):
    for rendition in plan_ladder(width, height):
        assert rendition.width % 2 == 0 and rendition.height % 2 == 0
        assert min(rendition.width, rendition.height) <= min(width, height)
        if width > height:
            assert rendition.width >= rendition.height
        else:
            assert rendition.height >= rendition.width
        assert abs(rendition.width / rendition.height - width / height) < 0.02 * width / height


def test_bitrates_fall_with_the_rung_and_rise_for_high_frame_rates():
    plan = plan_ladder(1920, 1080, 30)
    rates = [r.video_bitrate for r in plan]
    assert rates == sorted(rates, reverse=True) and rates[0] == 5_000_000 and rates[-1] == 200_000
    assert all(r.maxrate > r.video_bitrate and r.bufsize >= r.maxrate for r in plan)
    assert plan_ladder(1920, 1080, 60)[0].video_bitrate == 7_500_000


def test_frame_rate_cap_and_gop_length():
    assert output_frame_rate(240) == 60 and output_frame_rate(29.97) == 29.97 and output_frame_rate(0) == 0
    assert gop_frames(25, 2) == 50 and gop_frames(29.97, 2) == 60 and gop_frames(0, 2) == 60


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError):
        plan_ladder(0, 720)
