"""Event names: the enum the device publishes with is the list docs/schemas/event.json allows."""

from __future__ import annotations

import json
import logging

import pytest

from agent.mqtt.events import Event
from agent.mqtt.publisher import LogPublisher

from .schemas import DOCS


def test_the_event_enum_is_the_schema_s_list_of_names():
    assert [e.value for e in Event] == DOCS["event"]["properties"]["event"]["enum"]


def test_an_event_serialises_as_its_name():
    assert json.dumps({"event": Event.CAMERA_LOST}) == '{"event": "camera_lost"}'


def test_the_log_publisher_logs_the_name_and_refuses_unknown_ones(caplog):
    publisher = LogPublisher(dict)
    caplog.set_level(logging.INFO, logger="agent.mqtt.publisher")
    publisher.publish_event(Event.DRIFT, "warning", "recall fell", {"class": "face"})
    assert caplog.records[-1].getMessage().startswith("event drift: ")
    with pytest.raises(ValueError, match="not_an_event"):
        publisher.publish_event("not_an_event", "info", "")
