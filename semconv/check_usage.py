"""Fail when source code spells a telemetry name the registry does not define, or retypes a metric descriptor.

Scans quoted strings in src/ (Python) and collector/ (Go) that look like gen_ai.* or llmotel.*
names. Python module paths (llmotel.providers...) and logger names are not telemetry names and
are skipped when they name an existing module. Generated files are skipped.

A metric's unit and description come from the generated descriptors (HISTOGRAM_* / GAUGE_* in
_semconv.py, Histogram* / Counter* / Gauge* in internal/semconv): a literal unit= / description=
(Python) or Unit: / Description: / SetUnit / SetDescription (Go) outside generated files is a
retyped descriptor that can drift from the registry, and fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ROOT, _load

# Quoted strings only: telemetry names in code are string literals; backticks are docstring prose.
NAME = re.compile(r"""["']((?:gen_ai|llmotel|openai\.response)\.[a-z0-9_.]+)["']""")
RETYPED = {
    ".py": re.compile(r"""\b(?:unit|description)\s*=\s*[rbf]?["']"""),
    ".go": re.compile(r"""\b(?:(?:Unit|Description)\s*:\s*["`]|Set(?:Unit|Description)\(\s*["`])"""),
}
GENERATED = ("_semconv.py", "generated_semconv.go")
# Retyped descriptors awaiting their switch to the generated one; remove the entry with the switch.


def _module_names() -> set[str]:
    src = ROOT / "src"
    names = set()
    for path in src.rglob("*.py"):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def main() -> int:
    attrs, metrics, _spans = _load()
    known = {a.id for a in attrs} | {m.name for m in metrics}
    modules = _module_names()
    bad: list[str] = []
    files = list((ROOT / "src").rglob("*.py")) + list((ROOT / "collector").rglob("*.go"))
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if path.name in GENERATED or rel.startswith("collector/build/"):
            continue
        retyped = RETYPED[path.suffix] if not path.name.endswith("_test.go") else None
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name in NAME.findall(line):
                if name in known or name in modules:
                    continue
                bad.append(f"{rel}:{lineno}: '{name}' is not in semconv/registry")
            if retyped is not None and retyped.search(line):
                bad.append(f"{rel}:{lineno}: literal metric unit/description: use the generated descriptor")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
