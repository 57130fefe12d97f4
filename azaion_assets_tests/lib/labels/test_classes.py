import json

import pytest

from azaion_assets.lib.labels.classes import (
    NUM_SLOTS,
    ClassesError,
    default_classes_json,
    parse_classes,
    slot_names,
)

EXPECTED = [
    "ArmorVehicle",
    "Truck",
    "Vehicle",
    "Artillery",
    "Shadow",
    "Trenches",
    "MilitaryMan",
    "TyreTracks",
    "AdditArmoredTank",
    "Smoke",
    "Plane",
    "Moto",
    "CamouflageNet",
    "CamouflageBranches",
    "Roof",
    "Building",
    "Caponier",
]


def test_default_classes_are_the_seventeen_azaion_classes_in_azaion_format():
    raw = json.loads(default_classes_json())
    assert [c["Name"] for c in raw] == EXPECTED
    assert all(set(c) == {"Id", "Name", "ShortName", "Color"} for c in raw)
    assert [c["Id"] for c in raw] == list(range(17))


def test_slots_cover_three_weather_modes_and_fill_to_80():
    names = slot_names(parse_classes(default_classes_json()))
    assert len(names) == NUM_SLOTS == 80
    assert names[0] == "ArmorVehicle"
    assert names[20] == "ArmorVehicle(Wint)"
    assert names[40] == "ArmorVehicle(Night)"
    assert names[16 + 40] == "Caponier(Night)"
    assert names[17] == "Class-17" and names[79] == "Class-79"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"Id": 0}', "JSON list"),
        ('[{"Name": "x"}]', "needs at least Id and Name"),
        ('[{"Id": 20, "Name": "x"}]', "Id must be an integer"),
        ('[{"Id": 1, "Name": "a"}, {"Id": 1, "Name": "b"}]', "duplicate Id 1"),
    ],
)
def test_malformed_classes_are_rejected_with_a_reason(text, message):
    with pytest.raises(ClassesError, match=message):
        parse_classes(text)
