"""Architecture rules as checkers over parsed code (``ast``), shared by :mod:`tests.repo.test_code_rules`.

Every checker takes a module's source text and its dotted name and returns its violations as ``"line: what"``
strings, so a test can run it over the tree and a self-test can run it over a planted violation.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.helpers.paths import REPO

NAMESPACE = "cxr_explorer"
MAPPED = ("retrieval", "index", "webapp")
"""Top-level folders installed as ``cxr_explorer.<folder>`` (setuptools package-dir)."""
TREES = ("retrieval", "index", "webapp", "cxr_explorer", "benchmarks", "tests", "scripts")
ALLOWED_ALIASES = {("torch.nn.functional", "F")}  # the PyTorch convention
BANNED_AT_RUNTIME = ("torchvision", "timm")

Checker = Callable[[str, str], list[str]]


def module_name(path: Path) -> str:
    """Dotted name of a file under REPO (``retrieval/engine/engine.py`` -> ``cxr_explorer.retrieval.engine.engine``;
    a package's ``__init__.py`` keeps its ``__init__`` so that relative imports resolve alike for every file)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts and parts[0] in MAPPED:
        parts.insert(0, NAMESPACE)
    return ".".join(parts)


def python_files(*trees: str) -> list[Path]:
    """Every ``.py`` file under the given top-level folders of REPO (virtual environments left out)."""
    return sorted(p for tree in trees for p in (REPO / tree).rglob("*.py") if ".venv" not in p.parts)


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, at any depth (lazy imports in functions too);
    ``from a import b`` yields ``a.b`` as well as ``a`` so a submodule imported by name is seen."""
    package = module.split(".") if module else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # `module` names a file; a level-1 import is relative to the file's package
                anchor = package[:len(package) - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(forbidden: tuple[str, ...]) -> Checker:
    """A checker that reports every import of a module in (or under) one of ``forbidden``."""

    def check(source: str, module: str) -> list[str]:
        hits = {(line, name) for line, name in imported_modules(source, module)
                if any(_within(name, f) for f in forbidden)}
        return [f"{line}: imports {name}" for line, name in sorted(hits)]

    return check


retrieval_imports = forbidden_imports((f"{NAMESPACE}.index", f"{NAMESPACE}.webapp", f"{NAMESPACE}.cli",
                                       f"{NAMESPACE}.commands", f"{NAMESPACE}.errors", f"{NAMESPACE}.network",
                                       "streamlit"))
"""retrieval/ is the engine: no index job, no app, no CLI, no Streamlit."""
index_imports = forbidden_imports((f"{NAMESPACE}.webapp", "streamlit"))
"""index/ (the offline job) never reaches into the app."""
webapp_imports = forbidden_imports((f"{NAMESPACE}.index",))
"""webapp/ uses retrieval/ (and Streamlit), never the index job."""
runtime_imports = forbidden_imports(BANNED_AT_RUNTIME)
"""Installed code never imports torchvision or timm."""


def single_letter_aliases(source: str, module: str) -> list[str]:
    """``import x as Y`` / ``from x import y as Y`` with a one-letter alias (ALLOWED_ALIASES excepted)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            base = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if alias.asname and len(alias.asname) == 1 and (full, alias.asname) not in ALLOWED_ALIASES:
                    found.append((node.lineno, f"{full} as {alias.asname}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def bundle_attribute(source: str, module: str) -> list[str]:
    """Any ``<expr>.bundle`` or ``<expr>._bundle`` attribute (the app reaches the bundle through Engine methods,
    ``engine.cases`` and ``engine.facts``), and ``getattr(x, "bundle")``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("bundle", "_bundle"):
            found.append((node.lineno, f".{node.attr}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in ("bundle", "_bundle")):
            found.append((node.lineno, f"getattr {node.args[1].value}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def violations(checker: Checker, *trees: str) -> list[str]:
    """``checker`` run over every file of ``trees``, as ``path:line: what``."""
    out = []
    for path in python_files(*trees):
        rel = path.relative_to(REPO)
        out += [f"{rel}:{hit}" for hit in checker(path.read_text(encoding="utf-8"), module_name(path))]
    return out


BROWSER_MODULES = ("playwright", "benchmarks.browser")
"""Imports that mean a test drives Chromium."""


def _module_marks(tree: ast.Module) -> set[str]:
    """Marker names in the module-level ``pytestmark`` (``pytest.mark.NAME`` anywhere in its value)."""
    marks = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for sub in ast.walk(node.value):
                if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute)
                        and sub.value.attr == "mark"):
                    marks.add(sub.attr)
    return marks


def unmarked_browser_tests(source: str, module: str) -> list[str]:
    """A test module that imports playwright or the browser benchmark without ``browser`` in its ``pytestmark``
    (``tests/e2e`` is marked by its conftest, so it is left out)."""
    if not module.rpartition(".")[2].startswith("test_") or _within(module, "tests.e2e"):
        return []
    tree = ast.parse(source)
    hits = sorted({line for line, name in imported_modules(source, module)
                   if any(_within(name, b) for b in BROWSER_MODULES)})
    return [] if not hits or "browser" in _module_marks(tree) else [f"{hits[0]}: drives Chromium, no browser mark"]


def repo_from_file_path(source: str, module: str) -> list[str]:
    """``Path(__file__)...parents[N]``: tests find the repository through ``tests.helpers.paths`` (a file's own folder,
    ``Path(__file__).parent``, is fine)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
                and any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(node.value))):
            found.add(node.lineno)
    return [f"{line}: Path(__file__).parents[...]" for line in sorted(found)]


WRITE_MODES = set("wax+")
WRITING_METHODS = ("write_text", "write_bytes", "to_csv", "to_parquet", "to_json", "to_feather", "tofile", "savez",
                   "savez_compressed", "write_index", "write_table")
"""Methods and functions that write a file when given a path (``to_csv()`` without one returns text)."""


def _write_mode(call: ast.Call, position: int) -> bool:
    mode = call.args[position] if len(call.args) > position else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and bool(WRITE_MODES & set(mode.value))


def direct_writes(source: str, module: str) -> list[str]:
    """A file written in place instead of through ``retrieval.bundle.store.atomic``: ``open(p, "w"/"a"/"x"/"+")``,
    ``Path.open("w")``, ``os.open`` with ``O_WRONLY``/``O_RDWR``/``O_CREAT``, ``np.save``/``savez``,
    ``write_text``/``write_bytes``, ``to_csv``/``to_parquet``/... with a destination, ``faiss.write_index``, and a
    PIL ``.save`` to anything but a named buffer. Writing into a handle bound by a ``with`` statement is fine (its
    ``open`` is what is checked)."""
    found = set()
    tree = ast.parse(source)
    handles = {item.optional_vars.id for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
               for item in node.items if isinstance(item.optional_vars, ast.Name)}
    handles |= {arg.arg for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                for arg in node.args.args if arg.annotation is not None and "IO" in ast.unparse(arg.annotation)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value if isinstance(func, ast.Attribute) else None
        if owner is None and name in ("write_text", "write_bytes") or isinstance(owner, ast.Name) and \
                owner.id == "atomic":
            continue  # retrieval.bundle.store.atomic's own functions
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Name) and first.id in handles:
            continue  # into a file opened by a with-statement (whose open is checked) or passed in as an IO
        has_target = bool(node.args) or any(k.arg in ("path", "path_or_buf", "file", "fname") for k in node.keywords)
        if name == "open" and (isinstance(func, ast.Name) or (isinstance(owner, ast.Name) and owner.id == "io")):
            hit = _write_mode(node, 1)
        elif name == "open" and isinstance(owner, ast.Name) and owner.id == "os":
            flags = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            hit = bool(flags & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND"})
        elif name == "open":
            hit = _write_mode(node, 0)
        elif name == "save" and isinstance(owner, ast.Name) and owner.id in ("np", "numpy", "torch"):
            hit = True
        elif name == "save":
            hit = bool(node.args) and not isinstance(node.args[0], ast.Name)
        else:
            hit = name in WRITING_METHODS and has_target
        if hit:
            found.add((node.lineno, name))
    return [f"{line}: {name}(...) writes in place" for line, name in sorted(found)]
