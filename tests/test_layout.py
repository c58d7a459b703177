"""The package's shape: lint-clean, one public API the notebooks use, URLs only in the asset registry, and the
README's tables matching the registries they describe."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import fgclip_utils as fg

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fgclip_utils"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _readme_table(heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first markdown table after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # skip the header and its rule


def test_ruff_is_clean_on_package_tests_benchmarks_and_notebooks():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _code_cells(path: Path) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_notebooks_import_only_the_public_api():
    for path in NOTEBOOKS:
        imports = []
        for source in _code_cells(path):
            if "google.colab" in source:  # the Colab install cell runs before the package exists
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    imports.append(ast.unparse(node))
        assert imports == ["import fgclip_utils as fg"], (path.name, imports)
        for source in _code_cells(path):
            for name in re.findall(r"\bfg\.([A-Za-z_]+)", source):
                assert name in fg.__all__, (path.name, name)


def test_urls_live_in_the_asset_registry_only():
    url = re.compile(r"\b[a-z][a-z0-9+.-]*://")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if url.search(line)]
    assert hits and {h.split(":")[0] for h in hits} == {"fgclip_utils/data/assets.py"}, hits


def test_readme_cache_table_matches_the_cache_folders():
    rows = _readme_table("## Caches")
    assert [r[0].strip("`/") for r in rows] == list(fg.CACHE_FOLDERS)


def test_readme_lists_every_module_where_it_lives():
    listed = " ".join(r[0] for r in _readme_table("## Where things live"))
    modules = [p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    missing = [m for m in modules if m.split("/")[-1] not in listed]
    assert not missing, missing


def test_figures_read_registered_tables_only():
    for spec in fg.FIGURES.values():
        assert set(spec.tables) <= set(fg.RESULT_TABLES), spec.stem
    assert [s.notebook for s in fg.FIGURES.values()] == sorted(s.notebook for s in fg.FIGURES.values())
