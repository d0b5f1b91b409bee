"""The live RED page: its numbers against a real Prometheus, and the page in a real browser.

A shop under ``gunicorn -w 2`` (the dedicated metrics server on ``LAST9_METRICS_PORT``, outbound
calls to an inventory API under uvicorn) gets steady traffic for a little over a minute while
Debian's Prometheus scrapes it every second. The page's JSON, computed in the app from its ring
of snapshots, must give what PromQL gives over the same windows; Debian's chromium (driven by
Selenium through Debian's chromium-driver) must show the same numbers on the rendered page.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import last9
from conftest import ROOT, gunicorn, serve
from receivers import Prometheus, free_ports, wait_for

METRIC = "http_requests_duration_milliseconds"
ROUTES = {"/fast", "/slow/{ms}", "/flaky/{n}", "/stock/{n}"}
#: Where the browser test leaves its screenshot.
ARTIFACTS = Path(os.environ.get("LAST9_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Seconds between samples: the page's ring, and Prometheus' scrapes.
PAGE_INTERVAL, SCRAPE_INTERVAL = 5, 1
#: Windows compared, in seconds.
WINDOWS = {"1m": 60, "5m": 300}


def sampling_difference(window: str, covered: float) -> float:
    """The share of a window's requests that one side may count and the other not: those in the
    spans between the window's edges and each side's nearest samples, over the part of the
    window that has traffic (`covered` seconds)."""
    return (PAGE_INTERVAL + SCRAPE_INTERVAL) / min(WINDOWS[window], covered)


class Traffic:
    """Steady requests to the shop from a background thread, about 14 a second."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            started = time.monotonic()
            n += 1
            paths = ["/fast"] * 3 + [
                "/slow/20",
                f"/flaky/{2 * n}",
                f"/flaky/{2 * n + 1}",
                f"/stock/{n}",
            ]
            for path in paths:
                # Some callers name themselves, as instrumented clients do: `checkout` calls
                # /stock and /flaky, so one of its requests in six fails.
                named = path.startswith(("/stock", "/flaky"))
                headers = {"x-last9-caller": "checkout"} if named else {}
                try:
                    session.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=10)
                except requests.RequestException as e:
                    self.errors.append(f"{path}: {e}")
            self.stop.wait(max(0.0, 0.5 - (time.monotonic() - started)))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The shop with a minute of traffic behind it, its metrics port, and a Prometheus."""
    workdir = tmp_path_factory.mktemp("live")
    app_port, metrics_port, api_port, prom_port = free_ports(4)
    env = {
        "LAST9_METRICS_PORT": str(metrics_port),
        "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
        "LAST9_TEST_API": f"http://127.0.0.1:{api_port}",
    }
    api = ["python", "-m", "uvicorn", "--port", str(api_port), "tests.apps.lineage_api:app"]
    with (
        serve(api, api_port),
        serve(gunicorn("tests.apps.live_app:app", app_port, "-w", "2"), app_port, env),
    ):
        wait_for("the metrics port", lambda: _get(metrics_port, "/metrics"))
        prom = Prometheus(workdir, prom_port, scrape_target=f"127.0.0.1:{metrics_port}")
        prom.start()
        traffic = Traffic(app_port)
        try:
            # The first viewer starts the sampler; then a minute of traffic fills the 1 m window.
            assert _get(metrics_port, "/ui/data.json").json()["frames"] >= 1
            since = time.time()
            traffic.thread.start()
            time.sleep(65)
            yield {
                "metrics_port": metrics_port,
                "api_port": api_port,
                "prom": prom,
                "since": since,
            }
        finally:
            traffic.stop.set()
            traffic.thread.join(timeout=15)
            prom.stop()
        assert not traffic.errors, traffic.errors[:5]


def _get(port: int, path: str, **headers: str) -> requests.Response | None:
    try:
        response = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    except requests.ConnectionError:
        return None
    return response if response.status_code == 200 else None


def promql(prom: Prometheus, at: float, window: str, covered: float) -> dict[str, dict[str, float]]:
    """What Prometheus computes per route at `at`: rate, error ratio, and each quantile with the
    quantiles `sampling_difference` below and above it (`p99-`, `p99+`)."""
    count = f'{METRIC}_count{{program="shop"}}'
    failed = f'{METRIC}_count{{program="shop",status=~"5.."}}'
    rate = f"sum by (per) (rate({count}[{window}]))"
    queries = {
        "rate": rate,
        # Routes with no 5xx series have ratio 0.
        "error_ratio": f"(sum by (per) (rate({failed}[{window}])) or {rate} * 0) / {rate}",
    }
    delta = sampling_difference(window, covered)
    buckets = f'sum by (per, le) (rate({METRIC}_bucket{{program="shop"}}[{window}]))'
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        queries[name] = f"histogram_quantile({q}, {buckets})"
        queries[name + "-"] = f"histogram_quantile({max(0.0, q - delta)}, {buckets})"
        queries[name + "+"] = f"histogram_quantile({min(1.0, q + delta)}, {buckets})"
    result: dict[str, dict[str, float]] = {}
    for name, expr in queries.items():
        for (per,), value in prom.vector(expr, "per", time=f"{at:.3f}").items():
            result.setdefault(per, {})[name] = value
    return result


def check_against_promql(
    ours: dict[str, dict[str, float | None]],
    theirs: dict[str, dict[str, float]],
    window: str,
    covered: float,
    printed: float = 1e-9,
) -> None:
    """Our numbers equal Prometheus' within the sampling difference: rates and error ratios
    within that share, each quantile between Prometheus' quantiles that share below and above
    it. `printed`: the relative rounding of numbers read off the page."""
    delta = sampling_difference(window, covered)
    assert set(ours) == ROUTES, ours
    assert set(theirs) >= ROUTES, theirs
    for per in ROUTES:
        mine, prom = ours[per], theirs[per]
        assert mine["rate"] is not None and mine["rate"] > 0, (per, mine)
        assert math.isclose(mine["rate"], prom["rate"], rel_tol=delta + printed), (per, mine, prom)
        assert mine["error_ratio"] is not None
        assert abs(mine["error_ratio"] - prom["error_ratio"]) <= delta + printed, (per, mine, prom)
        for q in ("p50", "p90", "p99"):
            value = mine[q]
            assert value is not None, (per, q, mine)
            low, high = prom[q + "-"] * (1 - printed), prom[q + "+"] * (1 + printed)
            assert low <= value <= high, (per, q, value, prom)


def check_callers_against_promql(
    ours: dict[str, dict[str, float]], prom: Prometheus, at: float, covered: float
) -> None:
    """Each caller edge's rate and error ratio over 1 m equal what Prometheus computes from
    `http_requests_callers_total` (its `status` is the class answered), within the sampling
    difference."""
    total = 'http_requests_callers_total{program="shop"}'
    failed = 'http_requests_callers_total{program="shop",status=~"5.."}'
    rate = f"sum by (caller) (rate({total}[1m]))"
    queries = {
        "rate": rate,
        "error_ratio": f"(sum by (caller) (rate({failed}[1m])) or {rate} * 0) / {rate}",
    }
    delta = sampling_difference("1m", covered)
    for name, expr in queries.items():
        theirs = prom.vector(expr, "caller", time=f"{at:.3f}")
        assert {caller for (caller,) in theirs} == set(ours), (name, theirs, ours)
        for (caller,), value in theirs.items():
            mine = ours[caller][name]
            if name == "rate":
                assert math.isclose(mine, value, rel_tol=delta), (caller, mine, value)
            else:
                assert abs(mine - value) <= delta, (caller, mine, value)


def test_the_json_gives_what_promql_gives(shop: dict[str, Any]) -> None:
    data = _get(shop["metrics_port"], "/ui/data.json")
    assert data is not None
    report = data.json()
    (program,) = [p for p in report["programs"] if p["program"] == "shop"]
    for index, window in enumerate(("1m", "5m")):
        ours = {route["per"]: route["windows"][index] for route in program["routes"]}
        covered = report["now"] - shop["since"]
        theirs = promql(shop["prom"], report["now"], window, covered)
        check_against_promql(ours, theirs, window, covered)
    # One request in four of /flaky fails; none of the others do.
    flaky = next(r for r in program["routes"] if r["per"] == "/flaky/{n}")["windows"][0]
    assert abs(flaky["error_ratio"] - 0.25) <= sampling_difference("1m", 60)
    # The lineage: the caller that named itself, and the upstream the shop calls.
    callers = {c["caller"]: c["windows"][0] for c in program["callers"]}
    check_callers_against_promql(
        callers, shop["prom"], report["now"], report["now"] - shop["since"]
    )
    assert abs(callers["checkout"]["error_ratio"] - 1 / 6) <= sampling_difference("1m", 60)
    # The other requests name no caller (`unknown`; or the program of an earlier test's app,
    # when that test instrumented this process's HTTP clients): none of them fails.
    others = [c for name, c in callers.items() if name != "checkout"]
    assert len(others) == 1 and others[0]["error_ratio"] == 0, callers
    upstreams = {u["upstream"]: u["windows"][0] for u in program["upstreams"]}
    upstream = upstreams[f"127.0.0.1:{shop['api_port']}"]
    assert upstream["rate"] > 0 and upstream["error_ratio"] == 0, upstreams
    # Memory: the ring stays within its stated bound.
    assert 0 < report["ring_bytes"] <= report["ring_limit_bytes"] == 182 * (8192 * 8 + 512 * 48)


#: What the test reads off the rendered page.
READ_PAGE = """
    const shop = document.querySelector('section.program[data-program="shop"]');
    const rows = shop ? [...shop.querySelectorAll('tr.route')] : [];
    const text = (tr, cell) => tr.querySelector(cell).textContent;
    return {
      updated: document.body.getAttribute('data-updated'),
      routes: rows.map(tr => ({
        per: tr.getAttribute('data-route'),
        rate: text(tr, 'td.rate'),
        error_ratio: text(tr, 'td.errors'),
        p50: text(tr, 'td.p50'),
        p90: text(tr, 'td.p90'),
        p99: text(tr, 'td.p99'),
      })),
      map: shop ? shop.querySelector('.service-map').textContent : '',
      upstreams: [...document.querySelectorAll('tr[data-upstream]')].map(
        tr => [tr.getAttribute('data-upstream'), text(tr, 'td.rate')]),
    };
"""


def _number(text: str) -> float | None:
    """A number as the page prints it: `12.3`, `25.0%`, `24.3 ms`, or an en dash for none."""
    text = text.strip().removesuffix(" ms")
    if text in ("", "\u2013"):
        return None
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def test_the_page_in_chromium_shows_routes_rates_and_quantiles(shop: dict[str, Any]) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,760")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{shop['metrics_port']}/")
        page = wait_for(
            "the page to show every route",
            lambda: (lambda p: p if p["updated"] and len(p["routes"]) == len(ROUTES) else None)(
                driver.execute_script(READ_PAGE)
            ),
        )
        ours = {
            row["per"]: {k: _number(v) for k, v in row.items() if k != "per"}
            for row in page["routes"]
        }
        # The page prints 3 significant digits.
        at = float(page["updated"])
        theirs = promql(shop["prom"], at, "1m", at - shop["since"])
        check_against_promql(ours, theirs, "1m", at - shop["since"], printed=0.005)
        assert "checkout" in page["map"] and f"127.0.0.1:{shop['api_port']}" in page["map"], page
        (upstream,) = page["upstreams"]
        assert upstream[0] == f"127.0.0.1:{shop['api_port']}" and _number(upstream[1]) > 0

        # Choosing a route shows its latency distribution; all of /slow/20 is near 20 ms.
        driver.execute_script(
            "document.querySelector('tr.route[data-route=\"/slow/{ms}\"]').click()"
        )
        heading = driver.execute_script(
            "return document.querySelector('.distribution h3').textContent"
        )
        assert heading.endswith("/slow/{ms}"), heading
        bars = driver.execute_script(
            "return [...document.querySelectorAll('.distribution rect title')]"
            ".map(t => t.textContent)"
        )
        # Slept 20 ms and a little more: the bucket (14.4, 21.6] has requests.
        full = [bar for bar in bars if not bar.endswith(": 0 requests")]
        assert any(bar.startswith("\u226421.6 ms") for bar in full), bars

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "live-page.png"))
    finally:
        driver.quit()


def test_nothing_is_sampled_until_a_viewer_asks_and_the_page_keeps_its_protection() -> None:
    registry = last9.Registry()
    server = last9.start_metrics_server(
        0, "127.0.0.1", registry=registry, username="prom", password="s3cret"
    )
    try:
        base = f"http://127.0.0.1:{server.port}"

        def samplers() -> set[str]:
            """This process's sampler threads (other tests' may end meanwhile)."""
            return {
                task.name
                for task in Path("/proc/self/task").iterdir()
                if (task / "comm").read_text().strip() == "last9-live"
            }

        before = samplers()
        # Without credentials: 401 for the page, its data and the metrics; nothing sampled.
        for path, accept in (("/", "text/html"), ("/ui", "*/*"), ("/ui/data.json", "*/*")):
            response = requests.get(base + path, headers={"Accept": accept}, timeout=10)
            assert response.status_code == 401, path
        assert samplers() <= before
        # A scrape of / (no text/html) still gets the metrics; a browser gets the page.
        auth = ("prom", "s3cret")
        scrape = requests.get(base + "/", auth=auth, timeout=10)
        assert scrape.headers["Content-Type"].startswith("text/plain"), scrape.headers
        page = requests.get(base + "/", auth=auth, headers={"Accept": "text/html"}, timeout=10)
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "<script>" in page.text and "http://" not in page.text.replace(
            "http://www.w3.org/2000/svg", ""
        )
        assert samplers() <= before
        data = requests.get(base + "/ui/data.json", auth=auth, timeout=10)
        # One frame: the ring starts with this first request for data, not before it.
        assert data.status_code == 200 and data.json()["frames"] == 1
        assert samplers(), "a sampler runs once a viewer asked"
    finally:
        server.stop()


def test_the_page_and_its_data_are_served_over_the_servers_tls(tmp_path: Path) -> None:
    import trustme

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    authority.cert_pem.write_to_path(str(ca))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    server = last9.start_metrics_server(
        0, "127.0.0.1", registry=last9.Registry(), tls_cert_file=cert, tls_key_file=key
    )
    try:
        base = f"https://127.0.0.1:{server.port}"
        page = requests.get(base + "/ui", verify=str(ca), timeout=10)
        assert page.status_code == 200 and "<script>" in page.text
        # Self-contained, and told so: the page may reach its own origin only.
        assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["Cache-Control"] == "no-store"
        data = requests.get(base + "/ui/data.json", verify=str(ca), timeout=10)
        assert data.status_code == 200 and data.json()["frames"] == 1
        # Plain HTTP on the TLS port gets nothing.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(base.replace("https", "http") + "/ui/data.json", timeout=10)
    finally:
        server.stop()


# --- The app's own path: `<metrics_path>/ui`, only when asked for -------------------------


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found" if "ui" in environ["PATH_INFO"] else "200 OK", [])
    return [b"the app"]


def test_wsgi_serves_the_page_under_the_metrics_path_only_when_ui_is_on() -> None:
    from last9.wsgi.middleware import RedMiddleware
    from wsgi_helpers import call

    off = RedMiddleware(hello_app, registry=last9.Registry())
    assert call(off, "/metrics/ui")[0] == "404 Not Found"  # the app's own answer

    app = RedMiddleware(hello_app, registry=last9.Registry(), ui=True, program="shop")
    call(app, "/x")
    status, headers, body = call(app, "/metrics/ui")
    assert status == "200 OK" and b"last9 \xc2\xb7 live RED" in body
    assert dict(headers)["Content-Type"] == "text/html; charset=utf-8"
    assert "connect-src 'self'" in dict(headers)["Content-Security-Policy"]
    status, headers, body = call(app, "/metrics/ui/data.json")
    report = json.loads(body)
    assert status == "200 OK" and report["frames"] == 1
    (program,) = report["programs"]
    assert program["program"] == "shop" and [r["per"] for r in program["routes"]] == ["/x"]
    # POST and other paths go to the app.
    assert call(app, "/metrics/ui", "POST")[0] == "404 Not Found"
    assert call(app, "/metrics/uix")[0] == "404 Not Found"


def test_the_app_path_page_keeps_the_metrics_credentials() -> None:
    from last9.wsgi.middleware import RedMiddleware
    from wsgi_helpers import call

    app = RedMiddleware(
        hello_app,
        registry=last9.Registry(),
        ui=True,
        metrics_username="prom",
        metrics_password="s3cret",
    )
    for path in ("/metrics/ui", "/metrics/ui/data.json"):
        status, headers, _ = call(app, path)
        assert status == "401 Unauthorized" and "WWW-Authenticate" in dict(headers), path
    # base64("prom:s3cret")
    status, _, _ = call(app, "/metrics/ui", HTTP_AUTHORIZATION="Basic cHJvbTpzM2NyZXQ=")
    assert status == "200 OK"


def test_asgi_serves_the_page_under_the_metrics_path_when_ui_is_on() -> None:
    from test_asgi import http_scope, run

    from last9.asgi.middleware import RedMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"the app"})

    on = RedMiddleware(app, registry=last9.Registry(), ui=True)
    sent = run(on, http_scope("/metrics/ui/data.json"))
    assert sent[0]["status"] == 200, sent
    assert json.loads(sent[1]["body"])["frames"] == 1
    sent = run(on, http_scope("/metrics/ui"))
    assert sent[0]["status"] == 200 and b"<script>" in sent[1]["body"]
    off = RedMiddleware(app, registry=last9.Registry())
    assert run(off, http_scope("/metrics/ui"))[0]["status"] == 404


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("yes", True), ("", False), ("0", False), ("off", False)]
)
def test_last9_ui_turns_the_app_path_page_on(value: str, on: bool) -> None:
    from last9.config import resolve

    assert resolve(environ={"LAST9_UI": value}).ui is on
    assert resolve(ui=True, environ={"LAST9_UI": value}).ui is True


def test_a_bad_ui_setting_is_an_error_naming_it() -> None:
    from last9.config import resolve

    with pytest.raises(last9.MetricsError, match="LAST9_UI"):
        resolve(environ={"LAST9_UI": "maybe"})
    with pytest.raises(last9.MetricsError, match="ui must be True or False"):
        resolve(ui="yes", environ={})  # type: ignore[arg-type]
