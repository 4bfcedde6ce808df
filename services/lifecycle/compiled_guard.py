"""Refuse a compiled (mypyc) build of the lifecycle's hot modules that is older than its source.

`make install` compiles `COMPILED_MODULES` in place (deploy/scripts/build_compiled.py): a
`wire.cpython-*.so` beside `wire.py`, which Python's import system prefers to the `.py`. In an
editable checkout an edited rule would then be silently shadowed by the old machine code. The
build writes `compiled.json` beside them with the SHA-256 of each source it compiled; this finder,
installed by `services/lifecycle/__init__.py` before any of those modules is imported, compares
those hashes with the sources on disk. If all agree, the compiled modules load; if any differs (or
the manifest is unreadable, or LEADFLOW_COMPILED=0), *every* module of the build is loaded from its `.py`, with a warning
naming the stale sources: the compiled modules call each other directly in C, so a mix of a
fresh `.py` and its stale siblings would still run old code.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

log = logging.getLogger("leadflow.compiled")

# The hot loops of the core (profile: `leadflow bench --parts core`): decode, state machine, encode.
COMPILED_MODULES: tuple[str, ...] = (
    "services.lifecycle.wire",
    "services.lifecycle.batch",
    "services.lifecycle.domain.machine",
    "services.lifecycle.domain.log",
)
MANIFEST_NAME = "compiled.json"
# LEADFLOW_COMPILED=0 runs the sources although a fresh build is there.
SWITCH = "LEADFLOW_COMPILED"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_path(root: Path, module: str) -> Path:
    """`services.lifecycle.wire` -> <root>/services/lifecycle/wire.py (root: the folder holding `services`)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_files(root: Path, module: str) -> list[Path]:
    """The extension modules built for `module` beside its source (any Python version)."""
    src = source_path(root, module)
    return sorted(src.parent.glob(src.stem + ".*.so")) if src.parent.exists() else []


def stale_sources(root: Path, manifest: dict, modules: Sequence[str]) -> list[str]:
    """The modules whose source differs from the one the build compiled (or that it did not record)."""
    recorded = manifest.get("sources", {})
    stale = []
    for module in modules:
        path = source_path(root, module)
        if recorded.get(module) is None or not path.exists() or source_hash(path) != recorded[module]:
            stale.append(module)
    return stale


class CompiledGuard:
    """A meta path finder for `modules`: None (the normal import, compiled module first) when the
    build is fresh; the `.py` spec when it is stale or has no manifest. Decides once, on the first
    import."""

    def __init__(self, root: Path, manifest_path: Path, modules: Sequence[str] = COMPILED_MODULES) -> None:
        self.root = root
        self.manifest_path = manifest_path
        self.modules = tuple(modules)
        self._use_source: bool | None = None

    def use_source(self) -> bool:
        if self._use_source is None:
            self._use_source = self._decide()
        return self._use_source

    def _decide(self) -> bool:
        if os.environ.get(SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
            return True    # asked for the sources (to compare, or to rule the build out)
        if not self.manifest_path.exists():
            # No build, or one being made or removed (the manifest is written last and removed
            # first): a compiled module without its manifest is never used.
            leftovers = [m for m in self.modules if list(compiled_files(self.root, m))]
            if leftovers:
                log.warning("compiled build refused: %s has no %s; the lifecycle runs from its .py sources",
                            ", ".join(leftovers), self.manifest_path)
            return True
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("compiled build refused: %s is unreadable (%s); the lifecycle runs from its .py sources",
                        self.manifest_path, exc)
            return True
        stale = stale_sources(self.root, manifest, self.modules)
        if stale:
            log.warning("compiled build refused: %s changed since it was compiled; the lifecycle runs from its "
                        ".py sources (run `make install` to rebuild)", ", ".join(stale))
            return True
        return False

    def find_spec(self, name: str, path=None, target=None):
        if name not in self.modules or not self.use_source():
            return None
        source = source_path(self.root, name)
        loader = importlib.machinery.SourceFileLoader(name, str(source))
        spec = importlib.util.spec_from_file_location(name, source, loader=loader)
        return spec


def install(root: Path | None = None) -> CompiledGuard:
    """Put the guard first on sys.meta_path (once per process)."""
    for finder in sys.meta_path:
        if isinstance(finder, CompiledGuard):
            return finder
    root = root or Path(__file__).resolve().parents[2]
    guard = CompiledGuard(root, root / "services" / "lifecycle" / MANIFEST_NAME)
    sys.meta_path.insert(0, guard)
    return guard
