"""Avro schema resolution rules (the spec's "Schema Resolution"), as a compatibility check.

`incompatibilities(reader, writer)` lists why data written with `writer` cannot be read with
`reader`; an empty list means the reader schema is backward compatible with that writer.
It is stricter than the spec in one place: a changed logical type (timestamp-millis read as
timestamp-micros, say) resolves in Avro but silently changes the meaning, so it is reported.

`sample_records(writer)` builds records that exercise every union branch and enum symbol, so a
test can also write them with the old schema and read them back with the new one (fastavro).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# Writer type -> reader types it is promoted to.
PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def normalise(schema: Any) -> Any:
    """The schema as a tree: every node a dict with "type" (or a list for a union), named
    references replaced by the definition itself (recursive types become cycles)."""
    return _normalise(schema, "", {})


def _full_name(node: dict, namespace: str) -> tuple[str, str]:
    name = node["name"]
    if "." in name:
        return name, name.rsplit(".", 1)[0]
    ns = node.get("namespace", namespace)
    return (f"{ns}.{name}" if ns else name), ns


def _normalise(node: Any, namespace: str, names: dict[str, dict]) -> Any:
    if isinstance(node, str):
        if node in PRIMITIVES:
            return {"type": node}
        full = node if "." in node or not namespace else f"{namespace}.{node}"
        if full in names:
            return names[full]
        if node in names:
            return names[node]
        raise ValueError(f"unknown named type {node!r}")
    if isinstance(node, list):
        return [_normalise(branch, namespace, names) for branch in node]
    kind = node["type"]
    if not isinstance(kind, str) or (kind not in PRIMITIVES and kind not in NAMED and kind not in ("array", "map")):
        # {"type": {...}} or {"type": "some.Named"}: the inner schema is the type.
        return _normalise(kind, namespace, names)
    out: dict[str, Any] = {"type": kind, "logicalType": node.get("logicalType")}
    if kind in NAMED:
        full, namespace = _full_name(node, namespace)
        out["name"] = full
        out["aliases"] = [a if "." in a or not namespace else f"{namespace}.{a}" for a in node.get("aliases", [])]
        names[full] = out  # before the fields, so a record may refer to itself
        if kind in ("record", "error"):
            out["fields"] = [
                {
                    "name": f["name"],
                    "aliases": list(f.get("aliases", [])),
                    "type": _normalise(f["type"], namespace, names),
                    **({"default": f["default"]} if "default" in f else {}),
                }
                for f in node["fields"]
            ]
        elif kind == "enum":
            out["symbols"] = list(node["symbols"])
            out["default"] = node.get("default")
        else:
            out["size"] = node["size"]
    elif kind == "array":
        out["items"] = _normalise(node["items"], namespace, names)
    elif kind == "map":
        out["values"] = _normalise(node["values"], namespace, names)
    return out


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _describe(node: Any) -> str:
    if isinstance(node, list):
        return "union[" + ", ".join(_describe(b) for b in node) + "]"
    return node.get("name", node["type"])


def _names_match(reader: dict, writer: dict) -> bool:
    # The spec matches unqualified names; a reader alias may name the writer's type.
    return _short(reader["name"]) == _short(writer["name"]) or writer["name"] in reader["aliases"] or _short(
        writer["name"]
    ) in {_short(a) for a in reader["aliases"]}


def _branch_matches(reader: dict, writer: dict, *, promote: bool) -> bool:
    rt, wt = reader["type"], writer["type"]
    if rt in NAMED or wt in NAMED:
        return rt == wt and _names_match(reader, writer)
    if rt == wt:
        return True
    return promote and rt in PROMOTIONS.get(wt, ())


def default_fits(schema: Any, value: Any) -> bool:
    """Whether `value` is a valid JSON default for `schema` (a union's default is its first branch)."""
    if isinstance(schema, list):
        return default_fits(schema[0], value)
    kind = schema["type"]
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "enum":
        return value in schema["symbols"]
    if kind == "fixed":
        return isinstance(value, str) and len(value) == schema["size"]
    if kind == "array":
        return isinstance(value, list) and all(default_fits(schema["items"], v) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(default_fits(schema["values"], v) for v in value.values())
    if kind in ("record", "error"):
        return isinstance(value, dict) and all(
            default_fits(f["type"], value[f["name"]]) if f["name"] in value else "default" in f
            for f in schema["fields"]
        )
    return False


def incompatibilities(reader_schema: Any, writer_schema: Any) -> list[str]:
    """Why data written with `writer_schema` cannot be read with `reader_schema` ([] if it can)."""
    problems: list[str] = []
    _check(normalise(reader_schema), normalise(writer_schema), "", set(), problems)
    return problems


def _check(reader: Any, writer: Any, path: str, seen: set[tuple[int, int]], problems: list[str]) -> None:
    where = path or "<root>"
    if isinstance(writer, list):
        # Any writer branch may occur in the data, so each one must be readable.
        for branch in writer:
            _check(reader, branch, path, seen, problems)
        return
    if isinstance(reader, list):
        chosen = next((b for b in reader if _branch_matches(b, writer, promote=False)), None)
        chosen = chosen or next((b for b in reader if _branch_matches(b, writer, promote=True)), None)
        if chosen is None:
            problems.append(f"{where}: writer type {_describe(writer)} matches no branch of reader {_describe(reader)}")
        else:
            _check(chosen, writer, path, seen, problems)
        return
    rt, wt = reader["type"], writer["type"]
    if reader.get("logicalType") != writer.get("logicalType"):
        problems.append(
            f"{where}: logical type changed from {writer.get('logicalType')} to {reader.get('logicalType')}"
        )
        return
    if wt in PRIMITIVES and (rt == wt or rt in PROMOTIONS.get(wt, ())):
        return
    if rt != wt:
        problems.append(f"{where}: writer type {_describe(writer)} cannot be read as {_describe(reader)}")
        return
    if rt in NAMED and not _names_match(reader, writer):
        problems.append(f"{where}: {rt} name changed from {writer['name']} to {reader['name']} (add an alias)")
        return
    if rt in ("record", "error"):
        key = (id(reader), id(writer))
        if key in seen:  # recursive type already being checked
            return
        seen.add(key)
        by_name = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            written = next(
                (by_name[n] for n in [field["name"], *field["aliases"]] if n in by_name),
                None,
            )
            field_path = f"{path}.{field['name']}" if path else field["name"]
            if written is not None:
                _check(field["type"], written["type"], field_path, seen, problems)
            elif "default" not in field:
                problems.append(f"{field_path}: added without a default, so old data cannot fill it")
            elif not default_fits(field["type"], field["default"]):
                problems.append(f"{field_path}: default {field['default']!r} does not fit its type")
    elif rt == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and reader.get("default") is None:
            problems.append(f"{where}: enum symbols removed without a default: {', '.join(missing)}")
    elif rt == "fixed":
        if reader["size"] != writer["size"]:
            problems.append(f"{where}: fixed size changed from {writer['size']} to {reader['size']}")
    elif rt == "array":
        _check(reader["items"], writer["items"], f"{path}[]", seen, problems)
    elif rt == "map":
        _check(reader["values"], writer["values"], f"{path}{{}}", seen, problems)


_SAMPLE_TIME = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=timezone.utc)


def sample_records(writer_schema: Any) -> list[Any]:
    """Records valid for `writer_schema`: variant k picks branch k of every union (the last if
    shorter) and symbol k of every enum, so all branches and symbols appear in some record."""
    root = normalise(writer_schema)
    widest = max(_widest_choice(root, set()), 1)
    return [_sample(root, k, 0) for k in range(widest)]


def _widest_choice(node: Any, seen: set[int]) -> int:
    if isinstance(node, list):
        return max([len(node), *(_widest_choice(b, seen) for b in node)])
    if id(node) in seen:
        return 0
    seen.add(id(node))
    kind = node["type"]
    if kind == "enum":
        return len(node["symbols"])
    if kind in ("record", "error"):
        return max([0, *(_widest_choice(f["type"], seen) for f in node["fields"])])
    if kind == "array":
        return _widest_choice(node["items"], seen)
    if kind == "map":
        return _widest_choice(node["values"], seen)
    return 0


def _sample(node: Any, k: int, depth: int) -> Any:
    if isinstance(node, list):
        if depth > 4 and any(b["type"] == "null" for b in node):
            return None  # stop recursive types
        return _sample(node[min(k, len(node) - 1)], k, depth + 1)
    kind, logical = node["type"], node.get("logicalType")
    if logical in ("timestamp-micros", "timestamp-millis"):
        return _SAMPLE_TIME
    values = {
        "null": None, "boolean": k % 2 == 0, "int": 7 + k, "long": 2**40 + k,
        "float": 1.5, "double": 2.25 + k, "bytes": b"\x00\xff", "string": f"s{k}\u00e9",
    }
    if kind in values:
        return values[kind]
    if kind == "enum":
        return node["symbols"][k % len(node["symbols"])]
    if kind == "fixed":
        return bytes(node["size"])
    if kind == "array":
        return [_sample(node["items"], k, depth + 1)]
    if kind == "map":
        return {"key": _sample(node["values"], k, depth + 1)}
    return {f["name"]: _sample(f["type"], k, depth + 1) for f in node["fields"]}
