"""``detection:`` settings that used to pass validation and then broke or silenced detection."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from monitor.config.detection import DetectionConfig


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        # log(0 / 0): the stage raised on a series' first run of empty buckets
        ({"pseudo_count_per_second": 0.0}, "greater than 0"),
        # percent-style cuts: no score ever reaches them, every page would be SEV4
        ({"severity_thresholds": (95.0, 85.0, 70.0)}, "scores are in [0, 1]"),
        ({"severity_thresholds": (0.95, 0.85, -0.1)}, "scores are in [0, 1]"),
        ({"scale_weights": (0.6, -1.0, 1.0, 1.0)}, "must not be negative"),
        # a short last slot of the day: learned and renormalised as if it were a whole one
        ({"season_slot_seconds": 7000.0}, "whole slots"),
        ({"season_slot_seconds": 2 * 86_400.0}, "whole slots"),
    ],
)
def test_settings_that_make_no_sense_are_refused(setting: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("[", r"\[").replace("]", r"\]")):
        DetectionConfig(**setting)


def test_the_frozen_default_and_a_scale_turned_off_are_valid() -> None:
    DetectionConfig()
    for slot in (300.0, 900.0, 1800.0, 7200.0, 86_400.0):
        DetectionConfig(season_slot_seconds=slot)
    DetectionConfig(scale_weights=(0.0, 1.0, 1.0, 1.0), severity_thresholds=(1.0, 0.9, 0.8))
