"""Writes last9-slo.rules.yml from objectives.yml: SLO recording rules and burn-rate alerts.

    python deploy/prometheus/generate_slo.py [OBJECTIVES [RULES]]

The alerts follow the multiwindow, multi-burn-rate pattern of Google's SRE workbook (chapter
"Alerting on SLOs"), for an error budget spent over 30 days:

    severity  long window  short window  burn rate  budget spent when it fires
    page      1h           5m            14.4       2 %
    page      6h           30m           6          5 %
    ticket    1d           2h            3          10 %
    ticket    3d           6h            1          10 %

An alert fires when the error ratio exceeds burn rate * (1 - objective) over both windows: the
long one proves the burn is real, the short one that it is still going on (so the alert resolves
soon after the burn stops).

Two objectives per program: availability (requests answered without a 5xx) and latency
(requests that took at most `latency_ms`, a bucket boundary of the histogram, so that the share
is read from one bucket exactly). Programs with objectives of their own get rules of their own;
the others share the default's, selected by `program!="..."` matchers. The label `objectives`
("default" or the program) says which entry of objectives.yml a rule comes from.

Needs PyYAML (`pip install pyyaml`) to read objectives.yml.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
#: The histogram's bucket boundaries in ms, as last9 writes them (0.25 × 1.5^k, exact in binary).
BOUNDARIES = [0.25 * 1.5**k for k in range(31)]
#: (long window, short window, burn rate, severity), from the SRE workbook's table.
BURNS = (
    [("1h", "5m", 14.4, "page"), ("6h", "30m", 6, "page")],
    [
        ("1d", "2h", 3, "ticket"),
        ("3d", "6h", 1, "ticket"),
    ],
)
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
BY = "tenant, cluster, program"
METRIC = "http_requests_duration_milliseconds"


class ObjectiveError(ValueError):
    """objectives.yml holds something that cannot be an objective."""


@dataclass(frozen=True)
class Objective:
    """The objectives of one program, or of every program not listed (`program` None)."""

    program: str | None
    availability: float
    latency_le: str  # the bucket boundary, spelled as in the `le` label
    latency_target: float

    @property
    def name(self) -> str:
        """Which entry of objectives.yml: a label on the rules, which keeps them apart."""
        return self.program if self.program is not None else "default"


def boundary(latency_ms: object, where: str) -> str:
    """The `le` label value of the bucket boundary `latency_ms` names (to 4 significant digits)."""
    if not isinstance(latency_ms, int | float) or isinstance(latency_ms, bool):
        raise ObjectiveError(f"{where}: latency_ms must be a number of milliseconds")
    for bound in BOUNDARIES:
        if abs(latency_ms - bound) <= 0.0005 * bound:
            return repr(bound)
    above = next((b for b in BOUNDARIES if b > latency_ms), BOUNDARIES[-1])
    below = max((b for b in BOUNDARIES if b < latency_ms), default=BOUNDARIES[0])
    raise ObjectiveError(
        f"{where}: latency_ms {latency_ms} is not a bucket boundary of the histogram; "
        f"the nearest are {below!r} and {above!r}"
    )


def share(value: object, key: str, where: str) -> float:
    if not isinstance(value, float) or not 0 < value < 1:
        raise ObjectiveError(f"{where}: {key} must be a share between 0 and 1, such as 0.999")
    return value


def objectives(config: dict[str, object]) -> list[Objective]:
    """The default's objective first, then each listed program's."""
    default = config.get("default")
    programs = config.get("programs") or {}
    if not isinstance(default, dict) or not isinstance(programs, dict):
        raise ObjectiveError("objectives.yml needs a `default` mapping and a `programs` mapping")
    if "default" in programs:
        raise ObjectiveError("programs: no program may be called default (the label is taken)")
    result = []
    for program, own in [(None, {}), *programs.items()]:
        where = f"programs.{program}" if program is not None else "default"
        if not isinstance(own, dict):
            raise ObjectiveError(f"{where} must be a mapping")
        merged = {**default, **own}
        unknown = set(merged) - {"availability", "latency_ms", "latency_target"}
        if unknown:
            raise ObjectiveError(f"{where}: unknown keys {sorted(unknown)}")
        result.append(
            Objective(
                str(program) if program is not None else None,
                share(merged.get("availability"), "availability", where),
                boundary(merged.get("latency_ms"), where),
                share(merged.get("latency_target"), "latency_target", where),
            )
        )
    return result


def selector(objective: Objective, others: list[str]) -> str:
    """Label matchers for the programs an objective covers: one, or all the unlisted ones."""
    if objective.program is not None:
        return f"program={json.dumps(objective.program)}"
    if not others:
        return 'program=~".+"'  # a selector needs one matcher that matches something
    return ", ".join(f"program!={json.dumps(name)}" for name in others)


def number(value: float) -> str:
    return f"{round(value, 10):g}"


def indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


def record(name: str, expr: str, labels: dict[str, str] | None = None) -> str:
    out = f"- record: {name}\n  expr: |\n{indent(expr, 4)}\n"
    if labels:
        out += "  labels:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in labels.items())
    return out


def alert(name: str, expr: str, labels: dict[str, str], summary: str) -> str:
    out = f"- alert: {name}\n  expr: |\n{indent(expr, 4)}\n  labels:\n"
    out += "".join(f"    {k}: {json.dumps(v)}\n" for k, v in labels.items())
    return out + f"  annotations:\n    summary: {json.dumps(summary)}\n"


def ratio_rules() -> str:
    """Error ratios per program over every window the alerts read: the same for all objectives."""
    rules = ""
    for window in WINDOWS:
        total = f"sum by ({BY}) (rate({METRIC}_count[{window}]))"
        errors = f'sum by ({BY}) (rate({METRIC}_count{{status=~"5.."}}[{window}]))'
        rules += record(
            f"program:http_requests_error_ratio:rate{window}",
            f"({errors}\n  or {total} * 0)\n/ {total}",
        )
    return rules


def slow_rules(objective: Objective, match: str) -> str:
    """Shares of requests slower than the objective's threshold, per program and window."""
    rules = ""
    for window in WINDOWS:
        bucket = f'{METRIC}_bucket{{{match}, le="{objective.latency_le}"}}'
        fast = f"sum by ({BY}) (rate({bucket}[{window}]))"
        total = f"sum by ({BY}) (rate({METRIC}_count{{{match}}}[{window}]))"
        rules += record(
            f"program:http_requests_slow_ratio:rate{window}",
            f"1 - {fast}\n/ {total}",
            {"latency_ms": objective.latency_le, "objectives": objective.name},
        )
    return rules


def burn_alerts(objective: Objective, match: str) -> str:
    alerts = ""
    for slo, series, target in (
        ("availability", "program:http_requests_error_ratio", objective.availability),
        ("latency", "program:http_requests_slow_ratio", objective.latency_target),
    ):
        budget = 1 - target
        for speed, burns in zip(("Fast", "Slow"), BURNS, strict=True):
            severity = burns[0][3]
            expr = "\nor\n".join(
                f"(\n  {series}:rate{long}{{{match}}} > {number(rate * budget)}\n"
                f"  and\n  {series}:rate{short}{{{match}}} > {number(rate * budget)}\n)"
                for long, short, rate, _ in burns
            )
            what = (
                f"{number(target * 100)} % of requests without a 5xx"
                if slo == "availability"
                else f"{number(target * 100)} % of requests within {objective.latency_le} ms"
            )
            alerts += alert(
                f"Last9{slo.capitalize()}Burn{speed}",
                expr,
                {"severity": severity, "slo": slo, "objectives": objective.name},
                f"{{{{ $labels.program }}}} is spending its {slo} error budget ({what}) "
                + ("fast: it lasts days at this rate" if speed == "Fast" else "steadily"),
            )
    return alerts


def render(config: dict[str, object]) -> str:
    listed = objectives(config)
    others = [o.program for o in listed if o.program is not None]
    recording = ratio_rules()
    alerting = ""
    for objective in listed:
        match = selector(objective, others)
        recording += slow_rules(objective, match)
        alerting += burn_alerts(objective, match)
    return (
        "# Generated by deploy/prometheus/generate_slo.py from objectives.yml: edit those,\n"
        "# not this.\n"
        "groups:\n"
        "  - name: last9-slo-ratios\n"
        "    rules:\n"
        f"{indent(recording, 6)}\n"
        "  - name: last9-slo-alerts\n"
        "    rules:\n"
        f"{indent(alerting, 6)}\n"
    )


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else HERE / "objectives.yml"
    target = Path(argv[1]) if len(argv) > 1 else HERE / "last9-slo.rules.yml"
    try:
        text = render(yaml.safe_load(source.read_text()) or {})
    except ObjectiveError as error:
        print(f"{source}: {error}", file=sys.stderr)
        return 1
    target.write_text(text)
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
