"""The Prometheus rules in deploy/prometheus: lint-clean, generated from the objectives, and
unit-tested by promtool (each alert fires, then resolves, on synthetic series)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus"
sys.path.insert(0, str(RULES))

import generate_slo  # noqa: E402

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("rules", ["last9-red.rules.yml", "last9-slo.rules.yml"])
def test_the_rules_pass_promtool_check_without_a_finding(rules):
    result = promtool("check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "lint" not in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("test", ["tests/red.test.yml", "tests/slo.test.yml"])
def test_promtool_unit_tests_pass(test):
    result = promtool("test", "rules", test)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_checked_in_slo_rules_are_what_the_objectives_generate():
    objectives = yaml.safe_load((RULES / "objectives.yml").read_text())
    expected = generate_slo.render(objectives)
    assert (RULES / "last9-slo.rules.yml").read_text() == expected, (
        "run: python deploy/prometheus/generate_slo.py"
    )


def test_each_program_gets_its_own_thresholds():
    rules = yaml.safe_load((RULES / "last9-slo.rules.yml").read_text())
    alerts = {
        (rule["alert"], rule["labels"]["objectives"]): rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    # 14.4 × the budget: 0.1 % by default, 0.05 % for shop, 1 % for batch.
    assert "> 0.0144" in alerts[("Last9AvailabilityBurnFast", "default")]
    assert "> 0.0072" in alerts[("Last9AvailabilityBurnFast", "shop")]
    assert "> 0.144" in alerts[("Last9AvailabilityBurnFast", "batch")]
    # The default's rules leave out the programs that have their own.
    assert 'program!="shop", program!="batch"' in alerts[("Last9LatencyBurnFast", "default")]
    assert '{program="batch"}' in alerts[("Last9LatencyBurnSlow", "batch")]


def test_a_latency_that_is_no_bucket_boundary_is_refused_with_the_nearest_ones():
    with pytest.raises(generate_slo.ObjectiveError) as error:
        generate_slo.render(
            {"default": {"availability": 0.999, "latency_ms": 250, "latency_target": 0.99}}
        )
    assert "latency_ms 250 is not a bucket boundary" in str(error.value)
    assert "246.3153133392334 and 369.4729700088501" in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"default": {"availability": 99.9, "latency_ms": 246.3, "latency_target": 0.99}},
            "availability must be a share",
        ),
        (
            {"default": {"availability": 0.999, "latency_ms": 246.3}},
            "latency_target must be a share",
        ),
        (
            {"default": {"availability": 0.999, "latency_ms": "fast", "latency_target": 0.9}},
            "latency_ms must be a number",
        ),
        (
            {
                "default": {
                    "availability": 0.999,
                    "latency_ms": 246.3,
                    "latency_target": 0.9,
                    "p99": 1,
                }
            },
            "unknown keys ['p99']",
        ),
        ({"programs": {}}, "needs a `default` mapping"),
        (
            {
                "default": {"availability": 0.999, "latency_ms": 246.3, "latency_target": 0.9},
                "programs": {"default": {}},
            },
            "no program may be called default",
        ),
    ],
)
def test_bad_objectives_are_refused_naming_the_key(config, message):
    with pytest.raises(generate_slo.ObjectiveError) as error:
        generate_slo.render(config)
    assert message in str(error.value)


def test_a_default_alone_covers_every_program_and_passes_promtool(tmp_path):
    only = {"default": {"availability": 0.99995, "latency_ms": 246.3, "latency_target": 0.9}}
    rules = tmp_path / "slo.rules.yml"
    rules.write_text(generate_slo.render(only))
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    text = rules.read_text()
    assert 'program=~".+"' in text and "program!=" not in text
    assert "> 0.00072" in text  # 14.4 × a budget of 0.005 %
