"""The portable-name policy (issue 16): each hostile name a fuzz run wrote to disk, now refused
with its own reason, and the names the platform sends still accepted."""

import json
import random
from datetime import UTC, datetime

import pytest

from azaion_assets.dev.synthetic import render
from azaion_assets.lib.stream.contract import decode_message, pack
from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Rejected
from azaion_assets.lib.stream.portable_names import fold, unportable

WHEN = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)

CORPUS = {
    "a\nb": "control character U+000A at 1",
    "a\x1b[31mred": "control character U+001B at 1",
    "abc\u202egpj.exe": "invisible format character U+202E RIGHT-TO-LEFT OVERRIDE at 3",
    "a\u200bb": "invisible format character U+200B ZERO WIDTH SPACE at 1",
    "\ufeffname": "invisible format character U+FEFF ZERO WIDTH NO-BREAK SPACE at 0",
    "CON": "'CON' is a device name Windows reserves (in any case)",
    "con": "'CON' is a device name Windows reserves (in any case)",
    "LPT9": "'LPT9' is a device name Windows reserves (in any case)",
    "CON.txt": "'CON' is a device name Windows reserves (in any case)",
    "nul.tar.gz": "'NUL' is a device name Windows reserves (in any case)",
    "COM\u00b9": "'COM\u00b9' is a device name Windows reserves (in any case)",
    "a:b": "character ':' that Windows forbids at 1",
    "a*": "character '*' that Windows forbids at 1",
    "why?": "character '?' that Windows forbids at 3",
    "<a>": "character '<' that Windows forbids at 0",
    "a|b": "character '|' that Windows forbids at 1",
    'say"hi': "character '\"' that Windows forbids at 3",
    "frame.": "'frame.' ends with a dot or space, which Windows drops",
    "frame ": "'frame ' ends with a dot or space, which Windows drops",
    " frame": "' frame' begins with a space",
    "-rf": "'-rf' begins with '-', which tools read as an option",
    "a\u2215b": "non-ASCII symbol U+2215 DIVISION SLASH at 1",
    "a\u2044b": "non-ASCII symbol U+2044 FRACTION SLASH at 1",
    "a\uff0fb": "non-ASCII punctuation U+FF0F FULLWIDTH SOLIDUS at 1",
    "\u2024\u2024": "non-ASCII punctuation U+2024 ONE DOT LEADER at 0",
    "a\u00a0b": "non-ASCII space U+00A0 NO-BREAK SPACE at 1",
    "a\u0338b": "slash overlay mark U+0338 COMBINING LONG SOLIDUS OVERLAY at 1",
    "\u0301a": "'\u0301a' begins with a combining mark",
    "a\ue000": "non-ASCII unassigned or private character U+E000 at 1",
}

PORTABLE = [
    "video7_000123",  # the platform's <video>_<time>
    "synthetic_0001_000042",  # dev/synthetic.py
    "DJI_0001 (2)_0001234",  # a camera's file name, copied by Windows
    "flight-03.part[1]+b,c'd@e#f$g%h&i=j!k~l;m{n}o^p`q",
    "кадр_001",  # Cyrillic
    "caf\u00e9",  # NFC
    "cafe\u0301",  # NFD: a combining mark after its letter
    "비행_01",
    "CONSOLE",  # a device name only as the whole stem
    "COM10",
    "a-b",
]


@pytest.mark.parametrize("name", CORPUS)
def test_each_unportable_name_is_refused_with_its_reason(name):
    assert unportable(name) == f"unportable name: {CORPUS[name]}"


@pytest.mark.parametrize("name", PORTABLE)
def test_names_the_platform_sends_are_portable(name):
    assert unportable(name) is None


def test_the_reason_groups_under_one_category():
    assert {str(unportable(name)).split(":")[0] for name in CORPUS} == {"unportable name"}


def test_fold_joins_case_and_unicode_forms_only():
    assert fold("CaseCollision") == fold("casecollision")
    assert fold("caf\u00e9") == fold("cafe\u0301") == fold("CAF\u00c9")
    assert fold("Stra\u00dfe") == fold("STRASSE")
    assert fold("frame_1") != fold("frame_l")


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return render(random.Random(1), 64, 48)[0]


def _created(jpeg: bytes, name: str) -> bytes:
    box = json.dumps([{"cls": 1, "x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2}])
    return pack([WHEN, name, "v.mp4", 0, ".jpg", box, jpeg, 20, "v@x", 1, 10])


@pytest.mark.parametrize("name", ["a\nb", "CON", "a:b", "a\u2215b"])
def test_the_decoder_rejects_an_unportable_name_and_holds_its_event(jpeg, name):
    rejected = decode_message(_created(jpeg, name), {"AnnotationStatus": 10}).event
    assert isinstance(rejected, Rejected) and rejected.reason == f"unportable name: {CORPUS[name]}"
    assert rejected.name == name and isinstance(rejected.held, AnnotationEvent)
    assert rejected.held.name == name


def test_a_bulk_message_is_held_back_by_its_first_unportable_name():
    body = pack([["ok", "CON", "a:b"], 40, "v@x", WHEN])
    rejected = decode_message(body, {"AnnotationStatus": 40}).event
    assert isinstance(rejected, Rejected) and rejected.name == "CON"
    assert isinstance(rejected.held, BulkEvent) and rejected.held.names == ("ok", "CON", "a:b")


def test_a_message_bad_for_another_reason_holds_nothing_back():
    body = pack([WHEN, "CON", "v.mp4", 0, ".jpg", "[]", b"not an image", 20, "v@x", 1, 10])
    rejected = decode_message(body, {"AnnotationStatus": 10}).event
    assert isinstance(rejected, Rejected) and rejected.held is None
    assert "not an image" in rejected.reason
