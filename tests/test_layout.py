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


# the floors, lowest first: a module imports only from its own floor or those below it
FLOORS = [
    {"atomic_io", "cache", "environment", "colab", "colab_install", "profiles"},  # settings and files
    {"data"}, {"extraction"}, {"evaluation"}, {"heads"}, {"results"}, {"sweep"}, {"plots"},
    {"notebook", "cli", "__main__", "__init__"},  # what the user calls
]


def _floor(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(FLOORS) if top in names)


def _package_imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, relative to it) -> the package modules it imports, anywhere in it."""
    modules = {p.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", "."): p for p in PACKAGE.rglob("*.py")}
    modules = {m.removesuffix(".__init__"): p for m, p in modules.items()}
    edges = {}
    for module, path in modules.items():
        package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                stem = ".".join([*base, node.module] if node.module else base)
                for alias in node.names:
                    full = f"{stem}.{alias.name}".strip(".")
                    targets.add(full if full in modules else stem)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                targets |= {n.removeprefix("fgclip_utils.") for n in names if n and n.startswith("fgclip_utils.")}
        edges[module] = {t for t in targets if t in modules and t != module and t != "__init__"}
    return edges


def test_imports_point_down_the_floors_with_at_most_one_exception():
    edges = _package_imports()
    up = sorted((a, b) for a, targets in edges.items() for b in targets if _floor(b) > _floor(a))
    # the one arrow up: the profiles' settings name the synthetic benchmark's N per split (data.fgovd's table)
    assert up == [("profiles", "data.fgovd")], up


def test_no_import_cycles_between_modules():
    edges = _package_imports()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
