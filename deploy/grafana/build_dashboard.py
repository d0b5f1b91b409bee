"""Builds deploy/grafana/last9-red.json, the Grafana dashboard of last9's metrics, as code.

    python deploy/grafana/build_dashboard.py          # rewrites last9-red.json

Built with Grafana's own SDK (`grafana-foundation-sdk`, the version pinned in pyproject.toml's
test extra); tests/test_dashboard.py checks the JSON is what this script builds and runs every
query against a real Prometheus. Variables: the Prometheus data source, tenant, cluster, program
and route (`per`); every query filters on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, heatmap, nodegraph, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "last9-red.json"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
DURATION = "http_requests_duration_milliseconds"
CLIENT = "http_client_requests_duration_milliseconds"
#: Every family carries tenant, cluster and program (the app's constant labels).
TENANT_CLUSTER = 'tenant=~"$tenant", cluster=~"$cluster"'
APP = f'{TENANT_CLUSTER}, program=~"$program"'
#: ... and the route, except the in-flight gauge (counted before routing: per="/_all").
ROUTE = f'{APP}, per=~"$per"'
RATE = "[$__rate_interval]"
CLIENT_ERRORS = 'status=~"5..|timeout|connection_error|error"'
#: The callers counter's `status` is the class answered (`2xx`, `5xx`).
CALLER_ERRORS = 'status=~"5.."'


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def table(expr: str, ref: str) -> prometheus.Dataquery:
    """An instant query in table form (the node graph reads fields, not series)."""
    return prometheus.Dataquery().expr(expr).ref_id(ref).instant().format(PromQueryFormat.TABLE)


def ratio(errors: str, total: str, by: str) -> str:
    """errors / total by `by`, 0 (not nothing) where there were no errors."""
    return (
        f"(sum by ({by}) (rate({errors}{RATE}))\n"
        f"  or sum by ({by}) (rate({total}{RATE})) * 0)\n"
        f"/ sum by ({by}) (rate({total}{RATE}))"
    )


def quantiles(bucket: str, by: str, legend: str) -> list[prometheus.Dataquery]:
    """p50, p90 and p99 from the buckets, by the labels `by` (may be empty)."""
    labels = f"{by}, le" if by else "le"
    return [
        query(
            f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}{RATE})))",
            f"p{round(q * 100)} {legend}".strip(),
            ref,
        )
        for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
    ]


def graph(
    title: str, unit: str, targets: list[prometheus.Dataquery], width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(width)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def variable(name: str, label: str, expr: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(expr)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def service_map() -> nodegraph.Panel:
    """Callers → the selected programs → their upstreams, from the lineage families: each edge
    with its request rate and its error ratio."""
    callers = f"http_requests_callers_total{{{APP}}}"
    calls = f"{CLIENT}_count{{{APP}}}"
    failed_callers = f"http_requests_callers_total{{{APP}, {CALLER_ERRORS}}}"
    failed_calls = f"{CLIENT}_count{{{APP}, {CLIENT_ERRORS}}}"
    window = "[$__range]"

    def node(family: str, label: str) -> str:
        return (
            f"sum by (id) (label_replace(sum by ({label}) (rate({family}{window})),"
            f' "id", "$1", "{label}", "(.*)"))'
        )

    def edge(family: str, source: str, target: str, failed: str | None = None) -> str:
        """Per edge: the rate of `family`, or with `failed` the share of it that failed."""
        total = f"sum by ({source}, {target}) (rate({family}{window}))"
        value = total
        if failed is not None:
            errors = f"sum by ({source}, {target}) (rate({failed}{window}))"
            value = f"({errors} or {total} * 0) / {total}"
        return (
            "sum by (id, source, target) (label_join(label_replace(label_replace(\n"
            f"  {value},\n"
            f'  "source", "$1", "{source}", "(.*)"), "target", "$1", "{target}", "(.*)"),\n'
            '  "id", "->", "source", "target"))'
        )

    nodes = "\nor ".join(
        [
            node(f"{DURATION}_count{{{APP}}}", "program"),
            node(callers, "caller"),
            node(calls, "upstream"),
        ]
    )
    edges = f"{edge(callers, 'caller', 'program')}\nor\n{edge(calls, 'program', 'upstream')}"
    edge_errors = (
        f"{edge(callers, 'caller', 'program', failed_callers)}\nor\n"
        f"{edge(calls, 'program', 'upstream', failed_calls)}"
    )
    # Grafana's node graph reads a frame with id (nodes) and one with source and target (edges),
    # each with a mainstat (the request rate); an edge's secondarystat is its error ratio, a
    # query of its own merged into the edges' frame by their labels.
    merge_edges = model.DataTransformerConfig(
        id_val="merge",
        filter_val=model.MatcherConfig(id_val="byRefId", options="/^(?:edges|edge_errors)$/"),
        options={},
    )
    rename = model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True},
            "renameByName": {
                "Value #nodes": "mainstat",
                "Value #edges": "mainstat",
                "Value #edge_errors": "secondarystat",
            },
        },
    )
    return (
        nodegraph.Panel()
        .title("Service map: callers → program → upstreams (requests per second, error ratio)")
        .datasource(DATASOURCE)
        .height(12)
        .span(24)
        .with_target(table(nodes, "nodes"))
        .with_target(table(edges, "edges"))
        .with_target(table(edge_errors, "edge_errors"))
        .with_transformation(merge_edges)
        .with_transformation(rename)
        .nodes(nodegraph.NodeOptions().main_stat_unit("reqps"))
        .edges(nodegraph.EdgeOptions().main_stat_unit("reqps").secondary_stat_unit("percentunit"))
    )


def latency_heatmap() -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title("Latency distribution (histogram buckets)")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .calculate(False)
        .with_target(
            query(f"sum by (le) (increase({DURATION}_bucket{{{ROUTE}}}{RATE}))", "{{le}}").format(
                PromQueryFormat.HEATMAP
            )
        )
        .y_axis(heatmap.YAxisConfig().unit("ms"))
        .color(heatmap.HeatmapColorOptions().scheme("Oranges").mode(HeatmapColorMode.SCHEME))
    )


def build() -> dashboard.Dashboard:
    requests = f"{DURATION}_count{{{ROUTE}}}"
    server_errors = f'{DURATION}_count{{{ROUTE}, status=~"5.."}}'
    bucket = f"{DURATION}_bucket{{{ROUTE}}}"
    calls = f"{CLIENT}_count{{{ROUTE}}}"
    failed_calls = f"{CLIENT}_count{{{ROUTE}, {CLIENT_ERRORS}}}"
    by_route = "program, per"
    return (
        dashboard.Dashboard("last9: RED metrics")
        .uid("last9-red")
        .description("Rate, errors and duration of web apps instrumented with last9.")
        .tags(["last9", "red", "http"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_variable(variable("tenant", "Tenant", f"label_values({DURATION}_count, tenant)"))
        .with_variable(
            variable(
                "cluster",
                "Cluster",
                f'label_values({DURATION}_count{{tenant=~"$tenant"}}, cluster)',
            )
        )
        .with_variable(
            variable(
                "program",
                "Program",
                f"label_values({DURATION}_count{{{TENANT_CLUSTER}}}, program)",
            )
        )
        .with_variable(variable("per", "Route", f"label_values({DURATION}_count{{{APP}}}, per)"))
        .with_row(dashboard.Row("Rate, errors, duration by route"))
        .with_panel(
            graph(
                "Requests per second",
                "reqps",
                [query(f"sum by ({by_route}) (rate({requests}{RATE}))", "{{program}} {{per}}")],
            )
        )
        .with_panel(
            graph(
                "Errors (5xx) per second",
                "reqps",
                [
                    query(
                        f"sum by ({by_route}) (rate({server_errors}{RATE}))", "{{program}} {{per}}"
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Error ratio (5xx share)",
                "percentunit",
                [query(ratio(server_errors, requests, by_route), "{{program}} {{per}}")],
            )
        )
        .with_panel(
            graph(
                "Duration p50 / p90 / p99 by route",
                "ms",
                quantiles(bucket, by_route, "{{program}} {{per}}"),
            )
        )
        .with_panel(
            graph(
                "Responses per second by status",
                "reqps",
                [query(f"sum by (status) (rate({requests}{RATE}))", "{{status}}")],
            )
        )
        .with_panel(
            graph(
                "Requests in flight",
                "short",
                [query(f"sum by (program) (http_requests_in_flight{{{APP}}})", "{{program}}")],
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(latency_heatmap())
        .with_panel(
            graph("Duration p50 / p90 / p99, all selected routes", "ms", quantiles(bucket, "", ""))
        )
        .with_row(dashboard.Row("Dependencies (LAST9_INSTRUMENT_HTTP_CLIENTS=1)"))
        .with_panel(service_map())
        .with_panel(
            graph(
                "Outbound calls per second by upstream",
                "reqps",
                [
                    query(
                        f"sum by (program, upstream) (rate({calls}{RATE}))",
                        "{{program}} → {{upstream}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Outbound error ratio by upstream (5xx or no answer)",
                "percentunit",
                [
                    query(
                        ratio(failed_calls, calls, "program, upstream"),
                        "{{program}} → {{upstream}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Outbound p99 by upstream",
                "ms",
                [
                    query(
                        f"histogram_quantile(0.99, sum by (program, upstream, le)"
                        f" (rate({CLIENT}_bucket{{{ROUTE}}}{RATE})))",
                        "{{program}} → {{upstream}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Inbound requests per second by caller",
                "reqps",
                [
                    query(
                        "sum by (caller, program)"
                        f" (rate(http_requests_callers_total{{{ROUTE}}}{RATE}))",
                        "{{caller}} → {{program}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Requests counted under _other (label caps), by label",
                "reqps",
                [query(f"sum by (label) (rate(last9_label_overflow_total{RATE}))", "{{label}}")],
            )
        )
        .with_row(dashboard.Row("Runtime per worker"))
        .with_panel(
            graph(
                "Resident memory per worker",
                "bytes",
                [
                    query(
                        f"process_resident_memory_bytes{{{APP}}}",
                        "{{program}} {{hostname}} {{pid}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "CPU per worker (cores)",
                "short",
                [
                    query(
                        f"rate(process_cpu_seconds_total{{{APP}}}{RATE})",
                        "{{program}} {{hostname}} {{pid}}",
                    )
                ],
            )
        )
    )


def render() -> str:
    built = build().build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number  # unique ids, in layout order
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
