"""A compiled build of the hot modules is used only while it matches their sources."""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.lifecycle.compiled_guard import (
    COMPILED_MODULES, MANIFEST_NAME, CompiledGuard, compiled_files, source_hash, source_path, stale_sources,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_switch(monkeypatch):
    # LEADFLOW_COMPILED=0 in the caller's environment (a run of the suite on the sources) would
    # decide every case here; the test that needs it sets it.
    monkeypatch.delenv("LEADFLOW_COMPILED", raising=False)


class _CompiledStandIn:
    """What the import system does when a `.so` sits beside a `.py`: it loads the `.so`. Here a
    `hot_compiled.py` plays the extension module (a unit test has no C compiler to rely on)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, name, path=None, target=None):
        if name != "pkgx.hot":
            return None
        return importlib.util.spec_from_file_location(name, self.root / "pkgx" / "hot_compiled.py")


@pytest.fixture
def package(tmp_path: Path):
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "hot.py").write_text('BUILT_FROM = "source"\n')
    (pkg / "hot_compiled.py").write_text('BUILT_FROM = "compiled"\n')
    manifest = pkg / MANIFEST_NAME
    finders: list = []

    def load(manifest_sources: dict | None, raw: str | None = None):
        if raw is not None:
            manifest.write_text(raw)
        elif manifest_sources is not None:
            manifest.write_text(json.dumps({"sources": manifest_sources}))
        guard = CompiledGuard(tmp_path, manifest, modules=("pkgx.hot",))
        stand_in = _CompiledStandIn(tmp_path)
        finders[:] = [guard, stand_in]
        sys.meta_path[:0] = finders
        sys.path.insert(0, str(tmp_path))
        try:
            for name in ("pkgx.hot", "pkgx"):
                sys.modules.pop(name, None)
            return importlib.import_module("pkgx.hot")
        finally:
            sys.path.remove(str(tmp_path))
            for f in finders:
                sys.meta_path.remove(f)
            for name in ("pkgx.hot", "pkgx"):
                sys.modules.pop(name, None)

    yield pkg, load


def test_a_build_matching_its_source_is_used(package):
    pkg, load = package
    assert load({"pkgx.hot": source_hash(pkg / "hot.py")}).BUILT_FROM == "compiled"


def test_a_stale_build_is_refused_with_a_warning_and_the_source_runs(package, caplog):
    pkg, load = package
    recorded = source_hash(pkg / "hot.py")
    (pkg / "hot.py").write_text('BUILT_FROM = "source"\nEDITED = True\n')   # edited after the build
    with caplog.at_level(logging.WARNING, logger="leadflow.compiled"):
        module = load({"pkgx.hot": recorded})
    assert module.BUILT_FROM == "source" and module.EDITED is True
    assert "compiled build refused: pkgx.hot changed since it was compiled" in caplog.text


def test_an_unreadable_or_incomplete_manifest_refuses_the_build(package, caplog):
    _pkg, load = package
    with caplog.at_level(logging.WARNING, logger="leadflow.compiled"):
        assert load(None, raw="{not json").BUILT_FROM == "source"
        assert load({}).BUILT_FROM == "source"        # a module the build did not record
    assert caplog.text.count("compiled build refused") == 2


def test_leadflow_compiled_0_runs_the_sources_of_a_fresh_build(package, monkeypatch):
    pkg, load = package
    monkeypatch.setenv("LEADFLOW_COMPILED", "0")
    assert load({"pkgx.hot": source_hash(pkg / "hot.py")}).BUILT_FROM == "source"


def test_a_compiled_module_without_the_manifest_is_refused(package, caplog):
    # A build being made or removed (its manifest is written last, removed first), or a stray .so.
    pkg, load = package
    (pkg / "hot.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")   # only its name is looked at
    with caplog.at_level(logging.WARNING, logger="leadflow.compiled"):
        assert load(None).BUILT_FROM == "source"
    assert "compiled build refused: pkgx.hot has no" in caplog.text


def test_without_any_build_the_sources_load_quietly(package, caplog):
    with caplog.at_level(logging.WARNING, logger="leadflow.compiled"):
        assert package[1](None).BUILT_FROM == "source"
    assert caplog.text == ""


def test_one_stale_module_refuses_the_whole_build(tmp_path: Path):
    # The compiled modules call each other in C: a stale one cannot be mixed with fresh .py siblings.
    for name in ("a", "b"):
        (tmp_path / "p").mkdir(exist_ok=True)
        (tmp_path / "p" / f"{name}.py").write_text(f"X = {name!r}\n")
    manifest = {"sources": {"p.a": source_hash(tmp_path / "p" / "a.py"), "p.b": "0" * 64}}
    assert stale_sources(tmp_path, manifest, ("p.a", "p.b")) == ["p.b"]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    guard = CompiledGuard(tmp_path, tmp_path / "m.json", modules=("p.a", "p.b"))
    spec = guard.find_spec("p.a")   # p.a itself is fresh, and still comes from its source
    assert spec is not None and spec.origin == str(tmp_path / "p" / "a.py")
    assert guard.find_spec("p.other") is None


def test_the_real_build_is_refused_once_a_source_changes(tmp_path: Path):
    """The tree as `make install` left it (compiled or not), copied, then wire.py edited: the
    import comes from wire.py, with the warning; unedited, from the build when there is one."""
    copy = tmp_path / "tree"
    shutil.copytree(REPO / "services", copy / "services", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "schemas", copy / "schemas")
    manifest = REPO / "services" / "lifecycle" / MANIFEST_NAME
    # A fresh build in this checkout (make install) runs compiled; none, or a stale one, the sources.
    compiled = manifest.exists() and not stale_sources(REPO, json.loads(manifest.read_text()), COMPILED_MODULES) \
        and all(compiled_files(REPO, m) for m in COMPILED_MODULES)
    probe = ("import logging; logging.basicConfig(level=logging.WARNING, format='%(message)s'); "
             "import services.lifecycle.wire as w, services.lifecycle.domain.machine as m; "
             "print(w.__file__); print(m.__file__)")

    def run() -> tuple[list[str], str]:
        out = subprocess.run([sys.executable, "-c", probe], cwd=copy, env={"PYTHONPATH": str(copy)},
                             capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.split(), out.stderr

    files, err = run()
    assert all(f.endswith(".so") == compiled for f in files), (files, err)
    assert ("compiled build refused" in err) == (manifest.exists() and not compiled)
    wire = source_path(copy, "services.lifecycle.wire")
    wire.write_text(wire.read_text() + "\n# edited after the build\n")
    files, err = run()
    assert all(f.endswith(".py") for f in files), (files, err)   # machine.py too: the whole build
    if compiled:
        assert "compiled build refused: services.lifecycle.wire changed since it was compiled" in err
    assert set(COMPILED_MODULES) >= {"services.lifecycle.wire", "services.lifecycle.domain.machine"}
