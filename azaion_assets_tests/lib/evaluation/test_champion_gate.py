"""The promotion rule: a challenger replaces the champion only if it is as good, within the
tolerance, on the same test images."""

from azaion_assets.lib.evaluation.champion_gate import (
    Score,
    judge,
    read_evaluation,
    write_evaluation,
)

NEW = Score(map50=0.61, map50_95=0.40, images=50)


def test_the_first_model_is_promoted():
    verdict = judge(NEW, None, None, tolerance=0.0)
    assert verdict.promote and "no champion yet" in verdict.reason


def test_a_model_under_the_quality_floor_is_never_promoted_not_even_the_first():
    first = judge(NEW, None, None, tolerance=0.0, floor=0.41)
    assert not first.promote and first.floor == 0.41
    assert first.reason == (
        "kept as challenger: test mAP50-95 0.4000 is below the quality floor 0.41 "
        "(RETRAIN_MIN_TEST_MAP50_95)"
    )
    beats_champion = judge(NEW, Score(0.1, 0.05, 50), "2026-01-01", tolerance=0.0, floor=0.41)
    assert not beats_champion.promote and "quality floor" in beats_champion.reason
    assert judge(NEW, None, None, tolerance=0.0, floor=0.40).promote  # the floor is inclusive
    zero = Score(0.0, 0.0, 50)
    assert not judge(zero, None, None, tolerance=0.0, floor=0.05).promote


def test_a_better_or_equal_challenger_is_promoted_and_a_worse_one_kept():
    assert judge(NEW, Score(0.60, 0.39, 50), "2026-01-01", tolerance=0.0).promote
    assert judge(NEW, Score(0.61, 0.40, 50), "2026-01-01", tolerance=0.0).promote
    kept = judge(NEW, Score(0.70, 0.45, 50), "2026-01-01", tolerance=0.01)
    assert not kept.promote
    assert kept.reason == (
        "kept as challenger: mAP50-95 0.4000 vs champion (2026-01-01) 0.4500 on the same 50 "
        "test images (tolerance 0.01)"
    )


def test_one_test_image_is_said_in_the_singular():
    one = judge(Score(0.61, 0.40, 1), Score(0.70, 0.45, 1), "2026-01-01", tolerance=0.0)
    assert "on the same 1 test image (tolerance 0.0)" in one.reason


def test_the_tolerance_admits_a_slightly_worse_challenger_only():
    champion = Score(0.62, 0.405, 50)
    assert judge(NEW, champion, "2026-01-01", tolerance=0.005).promote
    assert not judge(NEW, champion, "2026-01-01", tolerance=0.004).promote


def test_a_champion_that_cannot_be_evaluated_is_not_replaced_automatically():
    verdict = judge(NEW, None, "2026-01-01", 0.01, champion_error="RuntimeError: 4 vs 80 classes")
    assert not verdict.promote
    assert "could not be evaluated" in verdict.reason and "4 vs 80 classes" in verdict.reason
    assert "promote by hand" in verdict.reason


def test_the_verdict_is_kept_beside_the_model(tmp_path):
    verdict = judge(NEW, Score(0.70, 0.45, 50), "2026-01-01", tolerance=0.0)
    write_evaluation(tmp_path, verdict)
    stored = read_evaluation(tmp_path)
    assert stored is not None and stored["promote"] is False
    assert stored["champion"]["map50_95"] == 0.45 and stored["challenger"]["images"] == 50
    assert read_evaluation(tmp_path / "absent") is None
