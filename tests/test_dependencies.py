"""What the product imports is installed by `scripts/run.sh` (the project without its dev
extras): every third-party module the product's code imports comes from a distribution that
the project's own dependencies bring in. A module only the dev extras install (pytest,
httpx, ...) would make a fresh machine's `scripts/run.sh` fail at start."""

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["streaming", "chatproject"]
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """The distributions installing `requirements` brings in (extras included, markers for
    other platforms or extras left out, as pip resolves them here)."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name_match = REQUIREMENT_NAME.match(requirement)
        assert name_match, requirement
        marker = requirement.partition(";")[2]
        if "extra ==" in marker:
            continue
        extras = re.findall(r"\[([^\]]+)\]", requirement.partition(";")[0])
        name = normalized(name_match.group(0))
        key = f"{name}[{extras[0]}]" if extras else name
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not for this platform (a marker excluded it)
        wanted = {normalized(e) for group in extras for e in group.split(",")}
        for dependency in requires:
            dep_marker = dependency.partition(";")[2]
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", dep_marker)
            if extra and normalized(extra.group(1)) not in wanted:
                continue
            todo.append(dependency.partition(";")[0].strip() if extra else dependency)
    return {s for s in seen if "[" not in s}


def imported_modules() -> set[str]:
    """The top-level modules the product's code imports."""
    names: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def test_everything_the_product_imports_is_a_dependency_of_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = closure(project["dependencies"])
    providers = metadata.packages_distributions()
    local = {p.name for p in ROOT.iterdir()}
    missing = {}
    for module in sorted(imported_modules()):
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        distributions = {normalized(d) for d in providers.get(module, [])}
        assert distributions, f"{module} is imported but not installed at all"
        if not distributions & installed:
            missing[module] = sorted(distributions)
    assert missing == {}, f"imported by the product, installed only by the dev extras: {missing}"
