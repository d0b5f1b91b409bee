"""Every example in examples/ runs with the command the README gives, and records its routes."""

from __future__ import annotations

import sys

import pytest
import requests

from conftest import ROOT, counts_by, eventually, free_port, scrape, serve


def python_example(name: str) -> list[str]:
    return [sys.executable, f"examples/{name}.py"]


def uvicorn_example(name: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--app-dir", "examples", f"{name}:app"]


#: example → the command the README shows (the port comes from PORT or --port).
EXAMPLES = {
    "flask_app": python_example("flask_app"),
    "django_app": python_example("django_app"),
    "fastapi_app": uvicorn_example("fastapi_app"),
    "starlette_app": uvicorn_example("starlette_app"),
    "tornado_app": python_example("tornado_app"),
    "pyramid_app": python_example("pyramid_app"),
    "bottle_app": python_example("bottle_app"),
    "falcon_app": python_example("falcon_app"),
}


def test_every_example_is_listed_here_and_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    on_disk = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert on_disk == set(EXAMPLES)
    for name in on_disk:
        assert f"examples/{name}.py" in readme, name


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_example_runs_and_records_its_route_templates(name):
    port = free_port()
    command = EXAMPLES[name]
    if "uvicorn" in command:
        command = [*command, "--port", str(port), "--log-level", "warning"]
    with serve(command, port, env={"PORT": str(port), "PYTHONPATH": ""}):
        base = f"http://127.0.0.1:{port}"
        for who in ("ada", "grace"):
            response = requests.get(f"{base}/name/{who}", timeout=10)
            assert response.status_code == 200 and who in response.text
        assert requests.get(f"{base}/static", timeout=10).text == "<p>Static</p>"
        assert requests.get(f"{base}/no/such/page", timeout=10).status_code == 404

        def recorded() -> dict[tuple[str, ...], float]:
            counts = counts_by(scrape(port).text, "per", "status")
            assert counts == {
                ("/name/{name}", "200"): 2,
                ("/static", "200"): 1,
                ("/unmatched", "404"): 1,
            }
            return counts

        eventually(recorded)
