"""The retraining decision's reason, as the sensor shows it when it skips or requests."""

from azaion_assets.lib.training.retrain_policy import Facts, decide


def _facts(validated: int, partitions: int) -> Facts:
    return Facts("2026-01-02", None, None, None, "2026-01-01", validated, partitions)


def test_the_reason_counts_in_the_singular_and_the_plural():
    one = decide(_facts(1, 1), min_new_validated=100)
    assert not one.request
    assert one.reason == (
        "not enough new data: 1 new validated annotation in 1 annotation partition since "
        "dataset 2026-01-01 (threshold 100)"
    )
    many = decide(_facts(120, 2), min_new_validated=100)
    assert many.request
    assert "120 new validated annotations in 2 annotation partitions" in many.reason
