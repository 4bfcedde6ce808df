"""The resolution check used by test_compatibility, on known schema changes; each verdict is
confirmed by fastavro actually writing with the old schema and reading with the new one."""
from __future__ import annotations

from io import BytesIO
from typing import Any

import fastavro
import pytest

from .avro_resolution import default_fits, incompatibilities, normalise, sample_records


def record(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "io.test", "fields": list(fields), **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


BASE = [f("id", "string"), f("n", "int")]
LINKED_LIST = record(f("value", "long"), f("next", ["null", "R"], default=None))
TS_MICROS = {"type": "long", "logicalType": "timestamp-micros"}
TS_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
COLOUR = {"type": "enum", "name": "Colour", "symbols": ["red", "green", "blue"]}

# (case, writer, reader)
COMPATIBLE = [
    ("unchanged", record(*BASE), record(*BASE)),
    ("field added with default", record(*BASE), record(*BASE, f("note", ["null", "string"], default=None))),
    ("field added with non-null default", record(*BASE), record(*BASE, f("count", "long", default=0))),
    ("field removed", record(*BASE), record(f("id", "string"))),
    ("int promoted to long", record(f("n", "int")), record(f("n", "long"))),
    ("int promoted to double", record(f("n", "int")), record(f("n", "double"))),
    ("long promoted to double", record(f("n", "long")), record(f("n", "double"))),
    ("float promoted to double", record(f("n", "float")), record(f("n", "double"))),
    ("string read as bytes", record(f("s", "string")), record(f("s", "bytes"))),
    ("field made nullable", record(f("s", "string")), record(f("s", ["null", "string"], default=None))),
    ("union widened", record(f("s", ["null", "string"])), record(f("s", ["null", "string", "long"]))),
    ("union branch promoted", record(f("s", ["null", "int"])), record(f("s", ["null", "long"]))),
    ("enum symbol added", record(f("c", COLOUR)), record(f("c", {**COLOUR, "symbols": ["red", "green", "blue", "pink"]}))),
    ("enum symbol removed with default", record(f("c", COLOUR)), record(f("c", {**COLOUR, "symbols": ["red", "green"], "default": "red"}))),
    ("field renamed with alias", record(f("n", "int")), record(f("count", "int", aliases=["n"]))),
    ("record renamed with alias", record(*BASE), record(*BASE, name="S", aliases=["io.test.R"])),
    ("array items promoted", record(f("a", {"type": "array", "items": "int"})), record(f("a", {"type": "array", "items": "long"}))),
    ("map values promoted", record(f("m", {"type": "map", "values": "int"})), record(f("m", {"type": "map", "values": "long"}))),
    ("recursive record unchanged", LINKED_LIST, LINKED_LIST),
    ("timestamp kept", record(f("t", TS_MICROS)), record(f("t", TS_MICROS))),
]
INCOMPATIBLE = [
    ("field added without default", record(*BASE), record(*BASE, f("note", "string")), "added without a default"),
    ("long narrowed to int", record(f("n", "long")), record(f("n", "int")), "cannot be read as int"),
    ("string read as long", record(f("s", "string")), record(f("s", "long")), "cannot be read as long"),
    ("enum symbol removed", record(f("c", COLOUR)), record(f("c", {**COLOUR, "symbols": ["red", "green"]})), "blue"),
    ("union narrowed", record(f("s", ["null", "string", "long"])), record(f("s", ["null", "string"])), "matches no branch"),
    ("nullable made required", record(f("s", ["null", "string"])), record(f("s", "string")), "null"),
    ("record renamed without alias", record(*BASE), record(*BASE, name="S"), "name changed"),
    ("fixed resized", record(f("x", {"type": "fixed", "name": "X", "size": 4})), record(f("x", {"type": "fixed", "name": "X", "size": 8})), "size"),
    ("array became map", record(f("a", {"type": "array", "items": "int"})), record(f("a", {"type": "map", "values": "int"})), "cannot be read"),
]


def fastavro_reads(writer: Any, reader: Any) -> bool:
    """Whether fastavro reads every sample record of `writer` with `reader`."""
    try:
        parsed_writer, parsed_reader = fastavro.parse_schema(writer), fastavro.parse_schema(reader)
        for sample in sample_records(writer):
            out = BytesIO()
            fastavro.schemaless_writer(out, parsed_writer, sample)
            out.seek(0)
            fastavro.schemaless_reader(out, parsed_writer, parsed_reader)
    except Exception:  # any resolution or parse failure means "cannot read"
        return False
    return True


@pytest.mark.parametrize(("case", "writer", "reader"), COMPATIBLE, ids=[c[0] for c in COMPATIBLE])
def test_compatible_change_passes_the_check_and_fastavro(case, writer, reader):
    assert incompatibilities(reader, writer) == []
    assert fastavro_reads(writer, reader)


@pytest.mark.parametrize(("case", "writer", "reader", "reason"), INCOMPATIBLE, ids=[c[0] for c in INCOMPATIBLE])
def test_incompatible_change_is_reported_and_fastavro_agrees(case, writer, reader, reason):
    problems = incompatibilities(reader, writer)
    assert problems, case
    assert any(reason in p for p in problems), problems
    assert not fastavro_reads(writer, reader)


def test_changed_logical_type_is_reported_although_avro_would_resolve_it():
    writer, reader = record(f("t", TS_MILLIS)), record(f("t", TS_MICROS))
    assert fastavro_reads(writer, reader)  # it resolves, but the numbers now mean something else
    assert incompatibilities(reader, writer) == ["t: logical type changed from timestamp-millis to timestamp-micros"]


def test_added_field_whose_default_does_not_fit_is_reported():
    problems = incompatibilities(record(*BASE, f("count", "long", default="zero")), record(*BASE))
    assert problems == ["count: default 'zero' does not fit its type"]


@pytest.mark.parametrize(
    ("schema", "value", "fits"),
    [
        (["null", "string"], None, True),
        (["null", "string"], "x", False),  # a union's default belongs to its first branch
        ("long", True, False),
        ("double", 1, True),
        ({"type": "enum", "name": "E", "symbols": ["a"]}, "b", False),
        ({"type": "array", "items": "int"}, [1, 2], True),
        ({"type": "map", "values": "int"}, {"a": "b"}, False),
        (record(f("a", "int"), f("b", "int", default=0)), {"a": 1}, True),
        (record(f("a", "int")), {}, False),
    ],
)
def test_default_fits_follows_the_field_type(schema, value, fits):
    assert default_fits(normalise(schema), value) is fits


def test_samples_cover_every_union_branch_and_enum_symbol():
    schema = record(f("u", ["null", "string", "long"]), f("c", COLOUR))
    samples = sample_records(schema)
    assert {type(s["u"]) for s in samples} == {type(None), str, int}
    assert {s["c"] for s in samples} == {"red", "green", "blue"}


def test_named_type_defined_once_and_referenced_later_resolves():
    point = {"type": "record", "name": "Point", "fields": [f("x", "int")]}
    schema = record(f("a", point), f("b", "Point"), f("c", "io.test.Point"))
    tree = normalise(schema)
    assert tree["fields"][1]["type"] is tree["fields"][0]["type"] is tree["fields"][2]["type"]
    assert incompatibilities(schema, schema) == []
