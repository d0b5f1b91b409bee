"""The package's shape: one module per framework, no import cycle, no framework imported that
the app does not use, and settings that travel as one set of keywords."""

from __future__ import annotations

import ast
import graphlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import last9
from last9 import config

PACKAGE = Path(last9.__file__).resolve().parent
#: Top-level packages of the web frameworks (and their toolkits) last9 knows.
WEB_FRAMEWORKS = (
    "flask",
    "werkzeug",
    "django",
    "starlette",
    "fastapi",
    "tornado",
    "pyramid",
    "bottle",
    "falcon",
)
FRAMEWORK_MODULES = [f"last9.{name}" for name in WEB_FRAMEWORKS if name != "werkzeug"]


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports anywhere in its code (also inside functions)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from last9 import config` imports the module last9.config.
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
    return graph


def run_python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAST9_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_each_framework_has_one_public_module():
    modules = package_modules()
    for module in FRAMEWORK_MODULES:
        assert module in modules
    assert not any(name.startswith("last9.frameworks") for name in modules)


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert graph["last9.wsgi.middleware"]  # the graph sees imports at all
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_a_cycle_would_be_found():
    graph = import_graph()
    graph["last9._adapter"].add("last9.wsgi.middleware")
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_every_module_imports():
    names = sorted(package_modules())
    out = run_python(
        f"import importlib\nfor n in {names!r}:\n    importlib.import_module(n)\nprint('ok')"
    )
    assert out == "ok"


@pytest.mark.parametrize(
    "module", ["last9", "last9.wsgi.middleware", "last9.asgi.middleware", "last9.setup"]
)
def test_importing_last9_imports_no_web_framework(module):
    out = run_python(
        f"import sys, {module}\n"
        f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {WEB_FRAMEWORKS!r}))"
    )
    assert out == "[]"


def test_detection_imports_only_the_apps_framework():
    out = run_python(
        "import sys, flask\n"
        "from last9.wsgi.middleware import RedMiddleware\n"
        "RedMiddleware(flask.Flask('shop'), metrics_path=None)\n"
        f"print(sorted(m for m in sys.modules if m in {FRAMEWORK_MODULES!r}"
        f" or m.partition('.')[0] in {WEB_FRAMEWORKS!r} and m.partition('.')[0] not in"
        " ('flask', 'werkzeug')))"
    )
    assert out == "['last9.flask']"


def test_options_are_the_settings_resolve_takes():
    internal = {"program_hint", "framework", "environ"}  # told by the entry point, not the user
    resolved = set(inspect.signature(config.resolve).parameters) - internal
    assert resolved == config.OPTION_NAMES


def test_an_unknown_keyword_is_a_type_error_naming_it(registry):
    import tornado.web

    from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
    from last9.bottle import Plugin
    from last9.falcon import Middleware
    from last9.tornado import instrument
    from last9.wsgi.middleware import RedMiddleware

    def app(environ, start_response):  # pragma: no cover - never called
        return []

    for make in (
        lambda: RedMiddleware(app, registry=registry, tennant="acme"),
        lambda: AsgiRedMiddleware(app, registry=registry, tennant="acme"),
        lambda: Middleware(registry=registry, tennant="acme"),
        lambda: Plugin(registry=registry, tennant="acme"),
        lambda: instrument(tornado.web.Application(), registry=registry, tennant="acme"),
    ):
        with pytest.raises(TypeError, match="'tennant'"):
            make()  # type: ignore[call-arg]
