"""Compile the lifecycle's hot modules with mypyc, in place, for `make install`.

    .venv/bin/python deploy/scripts/build_compiled.py [--clean]

Writes `services/lifecycle/<module>.cpython-*.so` beside each source, the shared library
`services/lifecycle__mypyc.cpython-*.so`, and `services/lifecycle/compiled.json` with the SHA-256 of
every source compiled (services/lifecycle/compiled_guard.py refuses the build once a source
differs). Never fails the install: without mypyc or a C compiler, or if the build fails, it removes
any partial build, says why, and the lifecycle runs from its .py sources (the same results,
≈ 1.3-1.4x the CPU of the compiled core, docs/performance.md). `--clean` only removes the build.
LEADFLOW_NO_COMPILE=1 skips it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.lifecycle.compiled_guard import COMPILED_MODULES, MANIFEST_NAME, source_hash, source_path  # noqa: E402

GROUP = "services.lifecycle"   # the shared library: services/lifecycle__mypyc.*.so
MANIFEST = ROOT / "services" / "lifecycle" / MANIFEST_NAME


def built_files() -> list[Path]:
    files = [MANIFEST]
    for module in COMPILED_MODULES:
        src = source_path(ROOT, module)
        files += src.parent.glob(src.stem + ".cpython-*.so")
    files += (ROOT / "services").glob("lifecycle__mypyc.cpython-*.so")
    return [f for f in files if f.exists()]


def clean() -> None:
    for f in built_files():
        f.unlink()


def say(message: str) -> None:
    print(f"build_compiled: {message}", flush=True)


def build() -> bool:
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        say(f"mypyc is not installed ({exc}); the lifecycle runs from its .py sources")
        return False
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None and shutil.which("gcc") is None:
        say("no C compiler (cc/gcc) found; the lifecycle runs from its .py sources")
        return False
    sources = {m: source_hash(source_path(ROOT, m)) for m in COMPILED_MODULES}
    paths = [str(source_path(ROOT, m).relative_to(ROOT)) for m in COMPILED_MODULES]
    with tempfile.TemporaryDirectory(prefix="leadflow-mypyc-") as tmp:
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            # Only the compiled modules must type-check; what they import is analysed silently.
            flags = ["--follow-imports=silent", "--ignore-missing-imports", "--no-incremental"]
            extensions = mypycify([*flags, *paths], opt_level="3", group_name=GROUP, target_dir=str(Path(tmp) / "c"))
            setup(name="leadflow-compiled", ext_modules=extensions, script_name="build_compiled.py",
                  script_args=["-q", "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "o"),
                               "--build-lib", str(Path(tmp) / "lib")])
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failed build must not fail the install
            say(f"the build failed ({exc!r}); the lifecycle runs from its .py sources")
            return False
        finally:
            os.chdir(cwd)
    # The sources must not have changed while they were compiled.
    if any(source_hash(source_path(ROOT, m)) != h for m, h in sources.items()):
        say("a source changed during the build; not used (run make install again)")
        return False
    import mypy.version

    MANIFEST.write_text(json.dumps({"compiler": f"mypyc {mypy.version.__version__}",
                                    "python": sys.version.split()[0], "sources": sources}, indent=2) + "\n")
    say(f"compiled {', '.join(COMPILED_MODULES)}")
    return True


def main() -> None:
    clean()
    if "--clean" in sys.argv[1:]:
        return
    if os.environ.get("LEADFLOW_NO_COMPILE", "").lower() in ("1", "true", "yes"):
        say("LEADFLOW_NO_COMPILE is set; the lifecycle runs from its .py sources")
        return
    if not build():
        clean()


if __name__ == "__main__":
    main()
