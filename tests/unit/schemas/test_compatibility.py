"""Released schema versions stay readable: every current schema in schemas/ must read data written
with each of its released versions (schemas/history/<name>/vN.avsc), by Avro's resolution rules
and in fact (records written with the old schema, read back with fastavro and the new one).

To change a schema: add it as schemas/history/<name>/v<N+1>.avsc and make schemas/<name>.avsc
the same; this test then tells whether old data stays readable."""
from __future__ import annotations

import json
from io import BytesIO

import fastavro
import pytest

from services.common.avro_codec import SCHEMA_DIR, SCHEMA_NAMES, load_schema_json, released_versions

from .avro_resolution import incompatibilities, normalise, sample_records

RELEASES = [(name, version) for name in SCHEMA_NAMES for version in released_versions(name)]


def test_every_schema_file_is_a_known_schema_with_released_versions():
    on_disk = sorted(path.stem for path in SCHEMA_DIR.glob("*.avsc"))
    assert on_disk == sorted(SCHEMA_NAMES)
    for name in SCHEMA_NAMES:
        versions = list(released_versions(name))
        assert versions == list(range(1, len(versions) + 1)), f"{name}: versions must be v1..vN without gaps"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_current_schema_is_the_newest_release(name):
    newest = list(released_versions(name).values())[-1]
    assert load_schema_json(name) == newest, (
        f"schemas/{name}.avsc differs from its newest release: add it as the next "
        f"schemas/history/{name}/vN.avsc"
    )


@pytest.mark.parametrize(("name", "version"), RELEASES)
def test_current_schema_resolves_every_release(name, version):
    writer = released_versions(name)[version]
    assert incompatibilities(load_schema_json(name), writer) == []


@pytest.mark.parametrize(("name", "version"), RELEASES)
def test_current_schema_reads_records_written_with_every_release(name, version):
    writer = released_versions(name)[version]
    reader = load_schema_json(name)
    parsed_writer, parsed_reader = fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    samples = sample_records(writer)
    assert samples
    for record in samples:
        out = BytesIO()
        fastavro.schemaless_writer(out, parsed_writer, record)
        out.seek(0)
        read_back = fastavro.schemaless_reader(out, parsed_writer, parsed_reader)
        reader_fields = {f["name"] for f in normalise(reader)["fields"]}
        kept = {k: v for k, v in record.items() if k in reader_fields}
        assert {k: read_back[k] for k in kept} == kept
        assert set(read_back) == reader_fields


def test_lifecycle_record_nests_exactly_the_event_envelope():
    # The envelope is defined once more inside lifecycle_record.avsc (a schema file must be
    # self-contained); the two must not drift apart.
    lifecycle = load_schema_json("lifecycle_record")
    (event_field,) = [f for f in lifecycle["fields"] if f["name"] == "event"]
    assert event_field["type"] == load_schema_json("event_envelope")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_field_is_documented_and_optional_fields_default_to_null(name):
    schema = load_schema_json(name)
    assert schema["namespace"] == "io.leadflow"
    for f in schema["fields"]:
        assert f.get("doc"), f"{name}.{f['name']} has no doc"
        if isinstance(f["type"], list) and f["type"][0] == "null":
            assert f.get("default", "missing") is None, f"{name}.{f['name']}: nullable fields default to null"


def test_schema_files_are_valid_json_with_a_final_newline():
    for path in [*SCHEMA_DIR.glob("*.avsc"), *SCHEMA_DIR.glob("history/*/*.avsc")]:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n"), path
        fastavro.parse_schema(json.loads(text))
