from __future__ import annotations

import io

from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given, strategies as st

from services.common.avro_wire import InternedText, encode_long, read_long


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_longs_are_avro_longs_both_ways(n):
    out = io.BytesIO()
    schemaless_writer(out, "long", n)
    assert encode_long(n) == out.getvalue()
    assert read_long(b"\x00" + out.getvalue() + b"\xff", 1) == (n, 1 + len(out.getvalue()))
    assert schemaless_reader(io.BytesIO(encode_long(n)), "long", None) == n


def test_a_varint_that_never_ends_is_refused():
    try:
        read_long(b"\xff" * 12, 0)
    except ValueError as exc:
        assert "varint too long" in str(exc)
    else:
        raise AssertionError("an endless varint was read")


def test_interned_text_is_bounded():
    interned = InternedText(2)
    assert interned[b"a"] == "a" and interned[b"b"] == "b"
    assert interned[b"c"] == "c" and len(interned) == 1   # emptied at the limit, then filled
