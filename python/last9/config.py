"""Settings: keyword arguments first, then ``LAST9_*`` environment variables, then defaults."""

from __future__ import annotations

import math
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar

from last9._core import MetricsError, Recorder, Registry

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
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolves settings; `program_hint` is the name the framework gives the app, if any."""
    env = os.environ if environ is None else environ
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
    return Settings(
        program=program or env.get("LAST9_PROGRAM") or default_program(program_hint),
        hostname=hostname or env.get("LAST9_HOSTNAME") or socket.gethostname(),
        tenant=tenant if tenant is not None else env.get("LAST9_TENANT", ""),
        cluster=cluster if cluster is not None else env.get("LAST9_CLUSTER", ""),
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
        **_histogram_kinds(
            env,
            classic_histograms,
            native_histograms,
            native_schema,
            native_max_buckets,
            native_zero_threshold,
        ),
    )


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


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _env_bool(env: os._Environ[str] | dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise MetricsError(f"{name} must be one of 1/0, true/false, yes/no, on/off, not {raw!r}")


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
