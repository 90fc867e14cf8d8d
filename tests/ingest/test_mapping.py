"""Import mappings: validated on load with the field named; rows to messages with casts and constants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from persona.errors import ConfigError
from persona.ingest.mapping import RowError, load_mapping, parse_mapping


def mapping(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "fields": {"userId": "id", **fields}}


@pytest.mark.parametrize(("raw", "field", "words"), [
    ({"type": "trak", "event": "E", "fields": {"userId": "id"}}, "type", "trak"),
    ({"type": "track", "event": "E", "fieldz": {}}, "fieldz", "unknown field"),
    ({"event": "E", "fields": {"userId": "id"}}, "type", "missing required field"),
    (mapping(**{"properties.revenue": {"colum": "amount"}}), "fields.properties.revenue.colum", "unknown field"),
    (mapping(**{"properties.revenue": {"column": "amount", "type": "decimal"}}),
     "fields.properties.revenue.type", "decimal"),
    (mapping(**{"properties.revenue": 12}), "fields.properties.revenue", "got `int`"),
    (mapping(**{"propertes.revenue": "amount"}), "fields.propertes.revenue", "unknown message field"),
    (mapping(**{"properties": "amount"}), "fields.properties", "is an object"),
    (mapping(**{"userId.x": "amount"}), "fields.userId.x", "single value"),
    (mapping(**{"properties.a b": "x"}), "fields.properties.a b", "not a valid path"),
    (mapping(**{"type": "x"}), "fields.type", "mapping's `type`"),
    (mapping(**{"properties.sku": {"column": "sku", "value": "S"}}), "fields.properties.sku", "exactly one"),
    (mapping(**{"properties.n": {"value": "many", "type": "int"}}), "fields.properties.n", "as int"),
    (mapping(**{"properties.n": {"column": "n", "format": "%Y"}}), "fields.properties.n", "timestamps only"),
    (mapping(**{"timestamp": {"column": "d", "timezone": "Europe/Atlantis"}}), "fields.timestamp",
     "unknown timezone"),
    (mapping(**{"properties.a": "x", "properties.a.b": "y"}), "fields.properties.a.b", "conflicts"),
    ({"type": "track", "fields": {"userId": "id"}}, "event", "needs `event`"),
    ({"type": "identify", "event": "E", "fields": {"userId": "id"}}, "event", "only for track"),
    ({"type": "identify", "fields": {}}, "fields", "empty"),
])
def test_mapping_errors_name_the_field(raw: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(raw, origin="pos.yaml")
    assert caught.value.field == field
    assert caught.value.message.startswith("pos.yaml: ")
    assert words in caught.value.message


def test_a_mapping_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pos.yaml"
    path.write_text("type: track\nfields: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(path)
    with pytest.raises(ConfigError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "missing.yaml")


def test_row_to_message_with_casts_constants_and_lists() -> None:
    rows = parse_mapping(mapping(**{
        "properties.revenue": {"column": "amount", "type": "float"},
        "properties.quantity": {"column": "qty", "type": "int"},
        "properties.gift": {"column": "gift", "type": "bool"},
        "properties.products[0].sku": "sku1",
        "properties.products[1].sku": "sku2",
        "properties.channel": {"value": "pos"},
        "properties.coupon": {"column": "coupon", "default": "none"},
        "context.store.id": {"column": "store", "type": "str"},
        "timestamp": {"column": "at", "format": "unix_ms"},
    }))
    message = rows.apply({"id": " 42 ", "amount": " 19.5", "qty": "3.0", "gift": "No", "sku1": "", "sku2": "B",
                          "coupon": " ", "store": 7, "at": "1788264000000"})
    assert message == {
        "type": "track", "event": "Order Completed", "userId": " 42 ",
        "properties": {"revenue": 19.5, "quantity": 3, "gift": False, "products": [{"sku": "B"}],
                       "channel": "pos", "coupon": "none"},
        "context": {"store": {"id": "7"}},
        "timestamp": "2026-09-01T12:00:00.000Z",
    }
    assert rows.columns == ["id", "amount", "qty", "gift", "sku1", "sku2", "coupon", "store", "at"]


@pytest.mark.parametrize(("spec", "cell", "words"), [
    ({"column": "c", "type": "int"}, "3.5", "cannot read '3.5' as int"),
    ({"column": "c", "type": "float"}, "nan", "not a finite number"),
    ({"column": "c", "type": "bool"}, "maybe", "as bool"),
    ({"column": "c", "type": "timestamp", "format": "%d.%m.%Y"}, "2026-09-01", "in the format '%d.%m.%Y'"),
    ({"column": "c", "type": "timestamp"}, "yesterday", "ISO 8601"),
    ({"column": "c", "required": True}, "", "column 'c' is empty"),
])
def test_a_cell_that_does_not_cast_fails_its_row_naming_the_target(spec: dict[str, Any], cell: str,
                                                                   words: str) -> None:
    rows = parse_mapping(mapping(**{"properties.x": spec}))
    with pytest.raises(RowError) as caught:
        rows.apply({"id": "u", "c": cell})
    assert caught.value.field == "properties.x"
    assert words in caught.value.reason


def test_timestamp_with_an_offset_ignores_the_default_zone() -> None:
    rows = parse_mapping(mapping(timestamp={"column": "at", "timezone": "America/New_York"}))
    assert rows.apply({"id": "u", "at": "2026-09-01T12:00:00+00:00"})["timestamp"] == "2026-09-01T12:00:00.000Z"
    assert rows.apply({"id": "u", "at": "2026-09-01T12:00:00"})["timestamp"] == "2026-09-01T16:00:00.000Z"
