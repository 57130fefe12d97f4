"""The ingest summary counts what the messages were: statuses and authors of the decoded ones,
and the quarantined apart, so the tables an operator reads add up."""

import random

from azaion_assets.dev.messages import Author, annotation, bulk
from azaion_assets.dev.synthetic import render
from azaion_assets.lib.ingest.summary import BULK_ROLE, IngestSummary, upgraded
from azaion_assets.lib.stream.contract import decode_message
from azaion_assets.lib.stream.events import STATUS_PROPERTY, Role, Status

VALIDATOR = Author(Role.VALIDATOR, "val@azaion.com")
OPERATOR = Author(Role.OPERATOR, "op@azaion.com")
BOX = [(0, 0.5, 0.5, 0.2, 0.2)]


def _count(*messages) -> IngestSummary:
    summary = IngestSummary()
    for offset, (body, props) in enumerate(messages):
        summary.count(offset, body, decode_message(body, props, 1 << 20))
    return summary


def _created(name: str, author: Author):
    return annotation(name, render(random.Random(0), 64, 48)[0], ".jpg", BOX, author)


def test_a_quarantined_message_is_counted_as_quarantined_and_not_as_an_event():
    summary = _count((b"\x93garbage", {STATUS_PROPERTY: 10}), _created("a", VALIDATOR))
    assert summary.quarantined == 1 and sum(summary.quarantine_reasons.values()) == 1
    assert summary.events == {"Created": 1}
    assert summary.roles == {"Validator": 1}
    assert summary.to_json()["events"] == {"Created": 1}


def test_every_decoded_message_has_a_role_and_a_bulk_one_says_it_sent_none():
    summary = _count(
        _created("a", VALIDATOR),
        _created("b", OPERATOR),
        bulk(["b"], Status.VALIDATED, VALIDATOR),
        bulk(["a", "b"], Status.DELETED, OPERATOR),
        (b"\x93garbage", {STATUS_PROPERTY: 30}),
    )
    assert summary.roles == {"Validator": 1, "Operator": 1, BULK_ROLE: 2}
    decoded = summary.messages - summary.quarantined
    assert sum(summary.roles.values()) == sum(summary.events.values()) == decoded == 4


def test_a_summary_stored_by_an_earlier_version_is_read_as_now_written():
    """A reused partition re-reports its stored summary: it must not bring the old counts back."""
    stored = {
        "messages": 5,
        "quarantined": 1,
        "events": {"Created": 2, "Deleted": 1, "Rejected": 1, "Validated": 1},
        "roles": {"Operator": 1, "Validator": 1},
    }
    summary = upgraded(stored)
    assert summary["events"] == {"Created": 2, "Deleted": 1, "Validated": 1}
    assert summary["roles"] == {BULK_ROLE: 2, "Operator": 1, "Validator": 1}
    assert upgraded(summary) == summary  # one written now is left as it is
