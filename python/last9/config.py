"""Settings: keyword arguments first, then ``LAST9_*`` environment variables, then defaults."""

from __future__ import annotations

import math
import os
import re
import socket
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar

from last9._core import Exclusions, MetricsError, Recorder, Registry

#: Names that say which server or interpreter runs the app, not which app it is.
_LAUNCHERS = frozenset(
    {
        "gunicorn",
        "uwsgi",
        "uvicorn",
        "hypercorn",
        "daphne",
        "granian",
        "waitress",
        "waitress-serve",
        "python",
        "python3",
        "flask",
        "django-admin",
        "manage",
        "__main__",
        "-c",
        "pytest",
        "ipython",
    }
)

T = TypeVar("T")

#: `metrics_path` default: the seed's `/metrics`.
DEFAULT_METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Settings:
    """Everything a middleware needs to know, resolved once at start-up."""

    program: str
    hostname: str
    tenant: str
    cluster: str
    buckets: tuple[float, ...] | None
    metrics_path: str | None
    max_routes: int
    max_domains: int
    #: The allow-list of domains (Host values): only these get a series of their own; None
    #: admits hosts by frequency (see docs on caps).
    domains: tuple[str, ...] | None
    metrics_port: int | None
    metrics_addr: str
    #: Who may scrape (the app's own path and the dedicated server): basic auth or a bearer token.
    metrics_auth: MetricsAuth
    #: TLS for the dedicated server only (the app's own path is served by the app's server).
    metrics_tls: MetricsTls | None
    #: Whether histograms keep classic buckets (``le`` series).
    classic_histograms: bool = True
    #: The shape of native (sparse exponential) buckets, or None to keep none.
    native_histograms: NativeHistograms | None = None
    #: Whether the app's own metrics path also answers ``<metrics_path>/ui`` with the live page
    #: (the dedicated server always does).
    ui: bool = False
    #: What ``exclude`` leaves out: templates, ``^`` regular expressions, methods (checked).
    exclude: tuple[str, ...] = ()
    #: OpenTelemetry's excluded-URL patterns, searched anywhere in the raw path.
    exclude_patterns: tuple[str, ...] = ()
    #: Constant labels added to every family after the seed's labels, in the order given.
    labels: tuple[tuple[str, str], ...] = ()
    #: A label of the duration family read from a request header: (label, header), or None.
    header_label: tuple[str, str] | None = None
    #: Its allow-list (None: values admitted up to `header_label_max`).
    header_label_values: tuple[str, ...] | None = None
    header_label_max: int = 10
    #: A label the app sets during the request (``last9.set_label``): (label, allow-list or
    #: None, cap), or None.
    request_label: tuple[str, tuple[str, ...] | None, int] | None = None
    #: Whether ``status`` is the class (``2xx``) rather than the code.
    group_status: bool = False
    #: Family names: the seed's (``last9``), OpenTelemetry's (``otel``) or both (``dup``).
    semconv: str = "last9"
    #: Whether request and response body sizes are recorded (two histograms in bytes).
    body_sizes: bool = False
    #: Whether the global registry's scrapes also carry prometheus_client's families.
    serve_prometheus_client: bool = True


@dataclass(frozen=True)
class NativeHistograms:
    """The shape of native histograms: Prometheus's exponential schema (-4..8: each power of
    two split into 2^schema buckets), the most buckets a series keeps before its resolution is
    halved, and the zero bucket's width in milliseconds."""

    schema: int = 3
    max_buckets: int = 160
    zero_threshold: float = 2.0**-128


@dataclass(frozen=True)
class MetricsAuth:
    """Credentials a scrape must present; all None means anyone may scrape."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MetricsTls:
    """The dedicated server's certificate and key, and the CA that client certificates need."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks a keyword argument the caller did not give (None is a meaningful value for some).
UNSET: object = _Unset()


class Options(TypedDict, total=False):
    """The keyword arguments every way of instrumenting an app takes (``RedMiddleware``, the
    frameworks' hooks, Django's ``LAST9`` dict): those of :func:`resolve`. A new setting is
    added here and to :func:`resolve`, and every hook takes it."""

    program: str | None
    hostname: str | None
    tenant: str | None
    cluster: str | None
    buckets: Sequence[float] | None
    metrics_path: str | None
    max_routes: int | None
    max_domains: int | None
    domains: Sequence[str] | None
    metrics_username: str | None
    metrics_password: str | None
    metrics_bearer_token: str | None
    metrics_tls_cert_file: str | None
    metrics_tls_key_file: str | None
    metrics_tls_client_ca_file: str | None
    classic_histograms: bool | None
    native_histograms: bool | None
    native_schema: int | None
    native_max_buckets: int | None
    native_zero_threshold: float | None
    ui: bool | None
    enabled: bool | None
    exclude: Sequence[str] | str | None
    labels: Mapping[str, str] | str | None
    header_label: tuple[str, str] | str | None
    header_label_values: Sequence[str] | str | None
    header_label_max: int | None
    request_labels: Mapping[str, Sequence[str] | int] | str | None
    group_status: bool | None
    semconv: str | None
    body_sizes: bool | None
    serve_prometheus_client: bool | None


#: The names :class:`Options` holds.
OPTION_NAMES: frozenset[str] = frozenset(Options.__annotations__)


def check_options(options: dict[str, object]) -> None:
    """Raises TypeError naming any keyword that is no setting (a typo would else be ignored)."""
    unknown = sorted(options.keys() - OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"unknown last9 setting(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(OPTION_NAMES))}"
        )


def resolve(
    *,
    program_hint: str | None = None,
    program: str | None = None,
    hostname: str | None = None,
    tenant: str | None = None,
    cluster: str | None = None,
    buckets: Sequence[float] | None = None,
    metrics_path: object = UNSET,
    max_routes: int | None = None,
    max_domains: int | None = None,
    domains: Sequence[str] | None = None,
    metrics_username: str | None = None,
    metrics_password: str | None = None,
    metrics_bearer_token: str | None = None,
    metrics_tls_cert_file: str | None = None,
    metrics_tls_key_file: str | None = None,
    metrics_tls_client_ca_file: str | None = None,
    classic_histograms: bool | None = None,
    native_histograms: bool | None = None,
    native_schema: int | None = None,
    native_max_buckets: int | None = None,
    native_zero_threshold: float | None = None,
    ui: bool | None = None,
    exclude: Sequence[str] | str | None = None,
    enabled: bool | None = None,
    labels: Mapping[str, str] | str | None = None,
    header_label: tuple[str, str] | str | None = None,
    header_label_values: Sequence[str] | str | None = None,
    header_label_max: int | None = None,
    request_labels: Mapping[str, Sequence[str] | int] | str | None = None,
    group_status: bool | None = None,
    semconv: str | None = None,
    body_sizes: bool | None = None,
    framework: str | None = None,
    serve_prometheus_client: bool | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolves settings; `program_hint` is the name the framework gives the app, if any, and
    `framework` its name as OpenTelemetry spells it in ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS``.
    `enabled` is checked here too, but entry points ask :func:`enabled` before anything else."""
    env = os.environ if environ is None else environ
    _switch(enabled, env)  # checked only: a switched-off entry point never resolves settings
    excluded, patterns = _exclude(env, exclude, framework)
    path_setting = "metrics_path"
    if metrics_path is UNSET:
        path_setting = "LAST9_METRICS_PATH"
        metrics_path = env.get("LAST9_METRICS_PATH", DEFAULT_METRICS_PATH)
    if metrics_path is not None and not isinstance(metrics_path, str):
        raise MetricsError(
            f"metrics_path must be a path such as '/metrics' or None, not {metrics_path!r}"
        )
    if metrics_path in ("", "off", "none"):
        metrics_path = None
    if metrics_path is not None and not metrics_path.startswith("/"):
        raise MetricsError(f"{path_setting} must start with '/': {metrics_path!r}")
    resource = _resource_attributes(env)
    constant_labels = _labels(env, labels)
    request_label = _header_label(env, header_label, {name for name, _ in constant_labels})
    app_label = _request_labels(env, request_labels, {name for name, _ in constant_labels})
    if app_label is not None and request_label is not None:
        raise MetricsError(
            "LAST9_REQUEST_LABELS (request_labels) and LAST9_HEADER_LABEL (header_label) cannot "
            "both be set: the duration family has one request label"
        )
    return Settings(
        program=program
        or env.get("LAST9_PROGRAM")
        or env.get("OTEL_SERVICE_NAME")
        or default_program(program_hint),
        hostname=hostname or env.get("LAST9_HOSTNAME") or socket.gethostname(),
        tenant=tenant
        if tenant is not None
        else env.get("LAST9_TENANT", resource.get("service.namespace", "")),
        cluster=cluster
        if cluster is not None
        else env.get("LAST9_CLUSTER", resource.get("k8s.cluster.name", "")),
        buckets=_checked_buckets("buckets", buckets) if buckets is not None else _env_buckets(env),
        metrics_path=metrics_path,
        max_routes=_checked_count("max_routes", max_routes)
        if max_routes is not None
        else _env_int(env, "LAST9_MAX_ROUTES", 500),
        max_domains=_checked_count("max_domains", max_domains)
        if max_domains is not None
        else _env_int(env, "LAST9_MAX_DOMAINS", 100),
        domains=_domains(env, domains),
        metrics_port=_env_port(env),
        metrics_addr=env.get("LAST9_METRICS_ADDR", "0.0.0.0"),
        metrics_auth=_metrics_auth(env, metrics_username, metrics_password, metrics_bearer_token),
        metrics_tls=_metrics_tls(
            env, metrics_tls_cert_file, metrics_tls_key_file, metrics_tls_client_ca_file
        ),
        ui=_ui(env, ui),
        exclude=excluded,
        exclude_patterns=patterns,
        labels=constant_labels,
        header_label=request_label,
        header_label_values=_header_label_values(env, header_label_values, request_label),
        header_label_max=_header_label_max(env, header_label_max),
        request_label=app_label,
        group_status=_flag(env, group_status, "group_status", "LAST9_GROUP_STATUS"),
        semconv=_semconv(env, semconv),
        body_sizes=_flag(env, body_sizes, "body_sizes", "LAST9_BODY_SIZES"),
        serve_prometheus_client=serve_prometheus_client
        if serve_prometheus_client is not None
        else _env_bool(env, "LAST9_PROMETHEUS_CLIENT", True),
        **_histogram_kinds(
            env,
            classic_histograms,
            native_histograms,
            native_schema,
            native_max_buckets,
            native_zero_threshold,
        ),
    )


SEMCONV_MODES = ("last9", "otel", "dup")


def _semconv(env: Mapping[str, str], semconv: str | None) -> str:
    setting = "semconv (LAST9_SEMCONV)"
    if semconv is None:
        setting, semconv = "LAST9_SEMCONV", env.get("LAST9_SEMCONV", "").strip() or "last9"
    if semconv not in SEMCONV_MODES:
        raise MetricsError(f"{setting} must be 'last9', 'otel' or 'dup', not {semconv!r}")
    return semconv


#: Label names the families already have (or Prometheus reserves): not for constant labels.
RESERVED_LABELS = frozenset(
    {"per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"}
    | {"le", "quantile", "upstream", "caller", "job", "instance"}
    # OpenTelemetry's names (LAST9_SEMCONV=otel/dup)
    | {"http_route", "http_request_method", "http_response_status_code", "server_address"}
    | {"error_type"}
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: Constant labels at most, and the longest value: they are on every series.
MAX_LABELS = 16
MAX_LABEL_VALUE = 256


def _labels(
    env: Mapping[str, str], labels: Mapping[str, str] | str | None
) -> tuple[tuple[str, str], ...]:
    """Constant labels: the keyword (a mapping, or ``name=value,...``), else LAST9_LABELS."""
    setting = "labels (LAST9_LABELS)"
    if labels is None:
        labels, setting = env.get("LAST9_LABELS", ""), "LAST9_LABELS"
    if isinstance(labels, str):
        pairs = []
        for item in labels.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise MetricsError(f"{setting} must be name=value pairs, not {item.strip()!r}")
            pairs.append((name.strip(), value.strip()))
    elif isinstance(labels, Mapping):
        pairs = list(labels.items())
    else:
        raise MetricsError(f"{setting} must be a dict of label names to values, not {labels!r}")
    seen: set[str] = set()
    for name, value in pairs:
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise MetricsError(f"{setting}: {name!r} is not a Prometheus label name")
        if name in RESERVED_LABELS:
            raise MetricsError(f"{setting}: {name!r} is a label last9 sets itself")
        if name in seen:
            raise MetricsError(f"{setting}: {name!r} is given twice")
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            raise MetricsError(
                f"{setting}: the value of {name!r} must be a string of at most "
                f"{MAX_LABEL_VALUE} characters, not {value!r}"
            )
        seen.add(name)
    if len(pairs) > MAX_LABELS:
        raise MetricsError(f"{setting}: at most {MAX_LABELS} constant labels, not {len(pairs)}")
    return tuple(pairs)


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")


def _header_label(
    env: Mapping[str, str], header_label: tuple[str, str] | str | None, taken: set[str]
) -> tuple[str, str] | None:
    """The label read from a request header: the keyword (``("tier", "X-Tier")`` or
    ``"tier=X-Tier"``), else LAST9_HEADER_LABEL."""
    setting = "header_label (LAST9_HEADER_LABEL)"
    if header_label is None:
        header_label, setting = (
            env.get("LAST9_HEADER_LABEL", "").strip() or None,
            "LAST9_HEADER_LABEL",
        )
        if header_label is None:
            return None
    if isinstance(header_label, str):
        name, sep, header = header_label.partition("=")
        if not sep:
            raise MetricsError(f"{setting} must be label=Header-Name, not {header_label!r}")
    elif isinstance(header_label, tuple | list) and len(header_label) == 2:
        name, header = header_label
    else:
        raise MetricsError(f"{setting} must be (label, header name), not {header_label!r}")
    name, header = str(name).strip(), str(header).strip()
    if not _LABEL_NAME.match(name) or name.startswith("__"):
        raise MetricsError(f"{setting}: {name!r} is not a Prometheus label name")
    if name in RESERVED_LABELS or name in taken:
        raise MetricsError(f"{setting}: {name!r} is a label already set")
    if not _HEADER_NAME.match(header):
        raise MetricsError(f"{setting}: {header!r} is not an HTTP header name")
    return name, header


def _header_label_values(
    env: Mapping[str, str],
    values: Sequence[str] | str | None,
    header_label: tuple[str, str] | None,
) -> tuple[str, ...] | None:
    setting = "header_label_values (LAST9_HEADER_LABEL_VALUES)"
    if values is None:
        values, setting = (
            env.get("LAST9_HEADER_LABEL_VALUES", "").strip() or None,
            "LAST9_HEADER_LABEL_VALUES",
        )
        if values is None:
            return None
    if isinstance(values, str):
        values = values.split(",")
    listed = tuple(v.strip() for v in values if isinstance(v, str) and v.strip())
    if not listed or len(listed) > MAX_HEADER_VALUES:
        raise MetricsError(f"{setting} must list 1 to {MAX_HEADER_VALUES} values, not {values!r}")
    if header_label is None:
        raise MetricsError(f"{setting} needs LAST9_HEADER_LABEL (header_label)")
    return listed


#: Most values a header label may take (its allow-list, or its cap).
MAX_HEADER_VALUES = 1000


def _header_label_max(env: Mapping[str, str], value: int | None) -> int:
    if value is None:
        value = _env_int(env, "LAST9_HEADER_LABEL_MAX", 10)  # type: ignore[arg-type]
        setting = "LAST9_HEADER_LABEL_MAX"
    else:
        setting = "header_label_max"
        if isinstance(value, str) and value.strip().isdigit():  # Pyramid's .ini settings
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HEADER_VALUES:
        raise MetricsError(
            f"{setting} must be a whole number from 1 to {MAX_HEADER_VALUES}, not {value!r}"
        )
    return value


def _request_labels(
    env: Mapping[str, str],
    request_labels: Mapping[str, Sequence[str] | int] | str | None,
    taken: set[str],
) -> tuple[str, tuple[str, ...] | None, int] | None:
    """The label the app sets (``last9.set_label``): the keyword (``{"tier": ["free", "gold"]}``
    or ``{"tier": 10}``, or the variable's syntax), else LAST9_REQUEST_LABELS (``tier=free|gold``:
    an allow-list; ``tier=10``: a cap). One label: the duration family has one request label."""
    setting = "request_labels (LAST9_REQUEST_LABELS)"
    if request_labels is None:
        request_labels, setting = env.get("LAST9_REQUEST_LABELS", ""), "LAST9_REQUEST_LABELS"
    if isinstance(request_labels, str):
        entries: list[tuple[object, object]] = []
        for item in request_labels.split(","):
            if not item.strip():
                continue
            name, sep, bound = item.partition("=")
            if not sep:
                raise MetricsError(
                    f"{setting} must be label=value|value or label=cap, not {item.strip()!r}"
                )
            bound = bound.strip()
            entries.append((name.strip(), int(bound) if bound.isdigit() else bound.split("|")))
    elif isinstance(request_labels, Mapping):
        entries = list(request_labels.items())
    else:
        raise MetricsError(
            f"{setting} must be a dict such as {{'tier': ['free', 'gold']}}, not {request_labels!r}"
        )
    if not entries:
        return None
    if len(entries) > 1:
        raise MetricsError(
            f"{setting}: one label, not {len(entries)} (the duration family has one request label)"
        )
    [(name, bound)] = entries
    if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
        raise MetricsError(f"{setting}: {name!r} is not a Prometheus label name")
    if name in RESERVED_LABELS or name in taken:
        raise MetricsError(f"{setting}: {name!r} is a label already set")
    if isinstance(bound, int) and not isinstance(bound, bool):
        if not 1 <= bound <= MAX_HEADER_VALUES:
            raise MetricsError(
                f"{setting}: the cap of {name!r} must be 1 to {MAX_HEADER_VALUES}, not {bound}"
            )
        return name, None, bound
    if isinstance(bound, str) or not isinstance(bound, Sequence):
        raise MetricsError(
            f"{setting}: {name!r} needs a list of values or a cap (a whole number), not {bound!r}"
        )
    values = tuple(v.strip() for v in bound if isinstance(v, str) and v.strip())
    if len(values) != len(bound) or not 1 <= len(values) <= MAX_HEADER_VALUES:
        raise MetricsError(
            f"{setting}: the values of {name!r} must be 1 to {MAX_HEADER_VALUES} non-empty "
            f"strings, not {bound!r}"
        )
    if any(len(v) > MAX_LABEL_VALUE for v in values):
        raise MetricsError(
            f"{setting}: the values of {name!r} must be at most {MAX_LABEL_VALUE} characters"
        )
    return name, values, len(values)


def _resource_attributes(env: Mapping[str, str]) -> dict[str, str]:
    """OpenTelemetry's ``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,...``, values percent-encoded);
    entries that are no pair are skipped, as OpenTelemetry's SDK does."""
    attributes: dict[str, str] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = urllib.parse.unquote(value.strip())
    return attributes


#: Values of LAST9_DISABLED that switch last9 off, and that leave it on.
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})


def enabled(enabled: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """The kill switch: False when ``enabled=False`` is given, or, without the keyword, when
    ``LAST9_DISABLED`` is 1/true/yes/on. Every entry point asks this first and, when False,
    hands the app back untouched: no wrapper, no thread, no file, no port."""
    return _switch(enabled, os.environ if environ is None else environ)


def _flag(env: Mapping[str, str], value: bool | None, keyword: str, variable: str) -> bool:
    """A yes/no setting: the keyword (a bool), else the variable (1/true/yes/on, 0/false/no/off)."""
    if isinstance(value, str):  # Pyramid's .ini settings are strings
        env, value, variable = {keyword: value}, None, keyword
    if value is not None:
        if not isinstance(value, bool):
            raise MetricsError(f"{keyword} must be True or False, not {value!r}")
        return value
    raw = env.get(variable, "").strip().lower()
    if raw in _YES:
        return True
    if raw in _NO:
        return False
    raise MetricsError(f"{variable} must be 1, true, yes or on (or 0, false, no, off), not {raw!r}")


def _switch(enabled: bool | str | None, env: Mapping[str, str]) -> bool:
    if isinstance(enabled, str):  # Pyramid's .ini settings are strings
        return _flag({"last9.enabled": enabled}, None, "enabled", "last9.enabled")
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise MetricsError(f"enabled must be True or False, not {enabled!r}")
        return enabled
    raw = env.get("LAST9_DISABLED", "").strip().lower()
    if raw in _YES:
        return False
    if raw in _NO:
        return True
    raise MetricsError(
        f"LAST9_DISABLED must be 1, true, yes or on (or 0, false, no, off), not {raw!r}"
    )


def _exclude(
    env: Mapping[str, str], exclude: Sequence[str] | str | None, framework: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``exclude`` entries and OpenTelemetry's patterns, checked by compiling them once."""
    setting = "exclude (LAST9_EXCLUDE)"
    if exclude is None:
        exclude = env.get("LAST9_EXCLUDE", "")
        setting = "LAST9_EXCLUDE"
    if isinstance(exclude, str):
        exclude = exclude.split(",")
    entries = tuple(e.strip() for e in exclude if isinstance(e, str) and e.strip())
    if len(entries) != len([e for e in exclude if not isinstance(e, str) or e.strip()]):
        raise MetricsError(f"{setting} must list strings, not {exclude!r}")
    otel = "OTEL_PYTHON_EXCLUDED_URLS"
    if framework:
        specific = f"OTEL_PYTHON_{framework.upper()}_EXCLUDED_URLS"
        if env.get(specific, "").strip():
            otel = specific
    patterns = tuple(p.strip() for p in env.get(otel, "").split(",") if p.strip())
    Exclusions(list(entries), setting=setting)
    Exclusions([], list(patterns), setting=otel)
    return entries, patterns


def _ui(env: os._Environ[str] | dict[str, str], ui: object) -> bool:
    """``ui`` (a bool), else ``LAST9_UI`` (1/true/yes/on or 0/false/no/off/empty), else off."""
    if ui is not None:
        if not isinstance(ui, bool):
            raise MetricsError(f"ui must be True or False, not {ui!r}")
        return ui
    raw = env.get("LAST9_UI", "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("", "0", "false", "no", "off"):
        return False
    raise MetricsError(f"LAST9_UI must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}")


def _histogram_kinds(
    env: os._Environ[str] | dict[str, str],
    classic: bool | None,
    native: bool | None,
    schema: int | None,
    max_buckets: int | None,
    zero_threshold: float | None,
) -> dict[str, object]:
    """Which kinds of histogram buckets to keep (both by default), and the native shape."""
    if classic is None:
        classic = _env_bool(env, "LAST9_CLASSIC_HISTOGRAMS", True)
    if native is None:
        native = _env_bool(env, "LAST9_NATIVE_HISTOGRAMS", True)
    if not (classic or native):
        raise MetricsError(
            "LAST9_CLASSIC_HISTOGRAMS (classic_histograms) and LAST9_NATIVE_HISTOGRAMS "
            "(native_histograms) are both off: keep at least one kind of histogram"
        )
    if schema is None:
        schema = _env_number(env, "LAST9_NATIVE_SCHEMA", int, 3)
    if max_buckets is None:
        max_buckets = _env_number(env, "LAST9_NATIVE_MAX_BUCKETS", int, 160)
    if zero_threshold is None:
        zero_threshold = _env_number(env, "LAST9_NATIVE_ZERO_THRESHOLD", float, 2.0**-128)
    if isinstance(schema, bool) or not isinstance(schema, int) or not -4 <= schema <= 8:
        raise MetricsError(f"LAST9_NATIVE_SCHEMA (native_schema) must be -4 to 8, not {schema!r}")
    if isinstance(max_buckets, bool) or not isinstance(max_buckets, int):
        raise MetricsError(
            f"LAST9_NATIVE_MAX_BUCKETS (native_max_buckets) must be a whole number, "
            f"not {max_buckets!r}"
        )
    if not 1 <= max_buckets <= 4096:
        raise MetricsError(
            f"LAST9_NATIVE_MAX_BUCKETS (native_max_buckets) must be 1 to 4096, not {max_buckets}"
        )
    if (
        isinstance(zero_threshold, bool)
        or not isinstance(zero_threshold, (int, float))
        or not math.isfinite(zero_threshold)
        or zero_threshold < 0
    ):
        raise MetricsError(
            "LAST9_NATIVE_ZERO_THRESHOLD (native_zero_threshold) must be a finite number of "
            f"milliseconds, at least 0, not {zero_threshold!r}"
        )
    shape = NativeHistograms(schema, max_buckets, float(zero_threshold)) if native else None
    return {"classic_histograms": bool(classic), "native_histograms": shape}


def _env_number(
    env: os._Environ[str] | dict[str, str], name: str, kind: type[int] | type[float], default: T
) -> int | float | T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise MetricsError(f"{name} must be {what}, not {raw!r}") from None


def _metrics_auth(
    env: os._Environ[str] | dict[str, str],
    username: str | None,
    password: str | None,
    bearer_token: str | None,
) -> MetricsAuth:
    username = username or env.get("LAST9_METRICS_USERNAME") or None
    password = password or env.get("LAST9_METRICS_PASSWORD") or None
    bearer_token = bearer_token or env.get("LAST9_METRICS_BEARER_TOKEN") or None
    if (username is None) != (password is None):
        raise MetricsError(
            "LAST9_METRICS_USERNAME and LAST9_METRICS_PASSWORD "
            "(metrics_username, metrics_password) must be set together"
        )
    if bearer_token is not None and username is not None:
        raise MetricsError(
            "LAST9_METRICS_BEARER_TOKEN (metrics_bearer_token) cannot be combined with "
            "LAST9_METRICS_USERNAME/LAST9_METRICS_PASSWORD: choose one"
        )
    return MetricsAuth(username, password, bearer_token)


def _metrics_tls(
    env: os._Environ[str] | dict[str, str],
    cert_file: str | None,
    key_file: str | None,
    client_ca_file: str | None,
) -> MetricsTls | None:
    cert_file = cert_file or env.get("LAST9_METRICS_TLS_CERT_FILE") or None
    key_file = key_file or env.get("LAST9_METRICS_TLS_KEY_FILE") or None
    client_ca_file = client_ca_file or env.get("LAST9_METRICS_TLS_CLIENT_CA_FILE") or None
    if cert_file is None and key_file is None:
        if client_ca_file is not None:
            raise MetricsError(
                "LAST9_METRICS_TLS_CLIENT_CA_FILE needs LAST9_METRICS_TLS_CERT_FILE and "
                "LAST9_METRICS_TLS_KEY_FILE"
            )
        return None
    if cert_file is None or key_file is None:
        raise MetricsError(
            "LAST9_METRICS_TLS_CERT_FILE and LAST9_METRICS_TLS_KEY_FILE "
            "(metrics_tls_cert_file, metrics_tls_key_file) must be set together"
        )
    return MetricsTls(cert_file, key_file, client_ca_file)


def default_program(hint: str | None) -> str:
    """The app's name: the framework's name for it, else the main script's, else ``app``."""
    if hint and hint not in _LAUNCHERS:
        return hint
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        stem = Path(main_file).stem
        if stem not in _LAUNCHERS:
            return stem
    return "app"


def _env_int(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MetricsError(f"{name} must be a whole number, not {raw!r}") from None
    return _checked_count(name, value)


def _checked_count(name: str, value: object) -> int:
    """A cap such as `max_routes`: a whole number, at least 1 (0 would make every value _other)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise MetricsError(f"{name} must be a whole number, not {value!r}")
    if not 1 <= value <= 0xFFFF_FFFF:
        raise MetricsError(f"{name} must be between 1 and 4294967295, not {value}")
    return value


def _env_bool(env: os._Environ[str] | dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise MetricsError(f"{name} must be 1/true/yes/on or 0/false/no/off, not {raw!r}")


def _domains(
    env: os._Environ[str] | dict[str, str], domains: Sequence[str] | None
) -> tuple[str, ...] | None:
    if domains is None:
        raw = env.get("LAST9_DOMAINS", "")
        if not raw.strip():
            return None
        domains = raw.split(",")
    elif isinstance(domains, str):
        raise MetricsError(
            f"domains must be a list of host names such as ['example.com'], not {domains!r}"
        )
    listed = tuple(d.strip() for d in domains if d.strip())
    if not listed:
        raise MetricsError("LAST9_DOMAINS (domains) must list at least one host name")
    return listed


def _env_port(env: os._Environ[str] | dict[str, str]) -> int | None:
    raw = env.get("LAST9_METRICS_PORT")
    if raw is None or raw == "":
        return None
    try:
        port = int(raw)
    except ValueError:
        raise MetricsError(f"LAST9_METRICS_PORT must be a port number, not {raw!r}") from None
    if not 0 <= port <= 65535:
        raise MetricsError(f"LAST9_METRICS_PORT must be between 0 and 65535, not {port}")
    return port


def _env_buckets(env: os._Environ[str] | dict[str, str]) -> tuple[float, ...] | None:
    raw = env.get("LAST9_BUCKETS")
    if not raw:
        return None
    try:
        bounds = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise MetricsError(
            f"LAST9_BUCKETS must be comma-separated milliseconds such as '5,10,25', not {raw!r}"
        ) from None
    return _checked_buckets("LAST9_BUCKETS", bounds, shown=raw)


def _checked_buckets(name: str, bounds: Sequence[float], shown: object = None) -> tuple[float, ...]:
    """Bucket bounds checked by the core's own rules now, so that the error names the setting."""
    try:
        checked = tuple(float(bound) for bound in bounds)
        Recorder(Registry(), hostname="-", program="-", buckets=list(checked))
    except (TypeError, ValueError) as err:  # MetricsError is a ValueError
        shown = list(bounds) if shown is None else shown
        raise MetricsError(f"{name}={shown!r} cannot be used: {err}") from None
    return checked
