"""Settings of the labmgr control plane, read from the environment with safe defaults.

The embedded default needs nothing set: SQLite and the secret key live in the data
directory (`LABMGR_DATA_DIR`, default `<repo>/var`). `DATABASE_URL` switches to PostgreSQL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.management.utils import get_random_secret_key

from labplan import subnets, units

# Lets the classes that django-stubs types as generic (ModelAdmin[Lab], ...) be subscripted
# at run time too.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _data_dir() -> Path:
    """The data directory, private to the control plane's user (0700): it holds the
    database, the secret key, the admin's and Redis' passwords."""
    path = Path(os.environ.get("LABMGR_DATA_DIR") or BASE_DIR / "var").resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def _private_file(path: Path) -> None:
    """Make `path` 0600, creating it empty if missing (SQLite makes its journal files
    with the database's mode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    except OSError:
        return  # not ours to make (a read-only tree): the database says so when opened
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _secret_key(data_dir: Path) -> str:
    """The key from the environment, else one generated on first start and kept 0600."""
    if key := os.environ.get("LABMGR_SECRET_KEY"):
        return key
    path = data_dir / "secret_key"
    try:
        # O_EXCL: two processes starting at once must not write two different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = get_random_secret_key()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


LABMGR_DATA_DIR = _data_dir()
SECRET_KEY = _secret_key(LABMGR_DATA_DIR)
DEBUG = os.environ.get("LABMGR_DEBUG") == "1"
ALLOWED_HOSTS = _env_list("LABMGR_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Broker, results and channel layer share one Redis; a password goes in the URL
# (redis://:secret@host:6379/0, or rediss:// for TLS).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "labmgr.accounts",
    "labmgr.hosts",
    "labmgr.labs",
    "labmgr.deployments",
    "labmgr.captures",
    "labmgr.monitoring",
    "labmgr.reservations",
    "labmgr.images",
    "labmgr.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # An ETag on every GET answered with a body (a hash of it); a client that sends it back
    # in If-None-Match gets 304 and no body while nothing it would see changed.
    "django.middleware.http.ConditionalGetMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "labmgr.web.timezones.TimeZoneMiddleware",  # pages in the browser's zone; the API in UTC
    # Last, and synchronous only: under ASGI, Django then runs every middleware above it
    # in the request's thread, instead of hopping between the event loop and a thread for
    # each hook of each (a lab list page: 22 -> 17 ms with one client). Nothing above
    # reads the body: CSRF does in process_view, which runs after this.
    "labmgr.middleware.BodySizeLimitMiddleware",
]

# Threads per web process that run requests through Django (labmgr.http_handler): as many
# requests at once, and database connections; more wait their turn. Few: threads of one
# process share its interpreter lock, and on SQLite each row read hands it over (a lab
# list page costs 5.2 ms of CPU on one thread, 7.1 on two, 10.6 on eight); enough that a
# slow request (one waiting for the write lock) does not hold up the others.
LABMGR_WEB_THREADS = int(os.environ.get("LABMGR_WEB_THREADS", "4"))

ROOT_URLCONF = "labmgr.urls"
WSGI_APPLICATION = "labmgr.wsgi.application"
ASGI_APPLICATION = "labmgr.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Each thread that queries keeps its connection this long (the web server's threads are
# long-lived and fixed in number: labmgr.http_handler), checked before and after every
# request and task (Celery's Django fixup), and tested before its first use in each (a
# PostgreSQL restart costs no request); 0 opens one per request. A web process thus holds
# LABMGR_WEB_THREADS connections at most, and one for its websockets: a pool in front of
# them would add nothing.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{LABMGR_DATA_DIR / 'labmgr.sqlite3'}",
        conn_max_age=int(os.environ.get("LABMGR_DB_CONN_MAX_AGE", "600")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    if (name := str(DATABASES["default"].get("NAME") or "")) and name != ":memory:":
        _private_file(Path(name))
    # The web server, the control worker and beat write at once: take the write lock when
    # a transaction starts (no "database is locked" on upgrade) and wait for it a while.
    # Write-ahead logging: readers (the web's list) neither wait for a writer (a heartbeat,
    # an agent's report) nor make it wait.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# A labfile is at most 1 MiB (LABFILE.md); no request body needs more.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS: list[Path | tuple[str, Path]] = [BASE_DIR / "static"]
_SWAGGER_UI_DIST = BASE_DIR / "node_modules" / "swagger-ui-dist"
if _SWAGGER_UI_DIST.is_dir():
    STATICFILES_DIRS.append(("vendor/swagger-ui", _SWAGGER_UI_DIST))
# The browser GUI's libraries (package.json), each under /static/vendor/<name>/.
for _prefix, _folder in {
    "xterm": "@xterm/xterm",
    "xterm-addon-fit": "@xterm/addon-fit/lib",
    "cytoscape": "cytoscape/dist",
    "uplot": "uplot/dist",
    "js-yaml": "js-yaml/dist",
}.items():
    if (BASE_DIR / "node_modules" / _folder).is_dir():
        STATICFILES_DIRS.append((f"vendor/{_prefix}", BASE_DIR / "node_modules" / _folder))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders so one command starts everything, collectstatic or not.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    # Token first: an API client without credentials gets 401 and a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "labmgr.api.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labmgr.api.exceptions.exception_handler",
    # `?format=` belongs to the export endpoint, not to renderer selection.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "labmgr API",
    "DESCRIPTION": (
        "Labs, hosts and deployments of labmgr. A user sees and changes their own labs; "
        "members of a group a lab is shared with may read and export it but not change or "
        "delete it; staff see and change every lab. Labs a user may not see answer 404. "
        'Errors share one shape: `{"detail": sentence, "errors": {field path: [messages]}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": f"{STATIC_URL}vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": f"{STATIC_URL}vendor/swagger-ui/favicon-32x32.png",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["labmgr.api.routers.drop_slashless_twins"],
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStatusEnum": "labmgr.deployments.choices.DeploymentStatus",
        "HostStatusEnum": "labmgr.hosts.choices.HostStatus",
        "StepStatusEnum": "labmgr.deployments.choices.StepStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LABMGR_LOG_LEVEL", "INFO")},
}


# --- live deployments: Celery, Channels, timeouts (see docs/messages.md) -----------------


def _env_seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# The longest task an agent runs (a 1,000-node apply) takes minutes; a message not acked
# within the visibility timeout is redelivered, so it must be far longer than that.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_EXPIRES = 3600

LABMGR_CHANNEL_LAYER = os.environ.get("LABMGR_CHANNEL_LAYER", "redis")
CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "channels.layers.InMemoryChannelLayer"}
        if LABMGR_CHANNEL_LAYER == "memory"
        # The pub/sub layer re-subscribes after Redis restarts (the list-based core layer
        # of channels-redis stops delivering to a process whose receive loop saw it go).
        else {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    )
}

# A host whose agent has been silent this long is offline, its deployments unknown.
LABMGR_HOST_OFFLINE_AFTER = _env_seconds("LABMGR_HOST_OFFLINE_AFTER", 30)
LABMGR_HOST_CHECK_EVERY = _env_seconds("LABMGR_HOST_CHECK_EVERY", 10)
# A deployment queued or deploying this long without news from its agent has failed.
LABMGR_DEPLOY_TIMEOUT = _env_seconds("LABMGR_DEPLOY_TIMEOUT", 900)
LABMGR_DRIFT_CHECK_EVERY = _env_seconds("LABMGR_DRIFT_CHECK_EVERY", 300)
# Metrics: 1 s samples are kept this long, then averaged per minute, kept that long.
LABMGR_METRICS_RAW_RETENTION = _env_seconds("LABMGR_METRICS_RAW_RETENTION", 3600)
LABMGR_METRICS_RETENTION = _env_seconds("LABMGR_METRICS_RETENTION", 7 * 86400)
LABMGR_METRICS_DOWNSAMPLE_EVERY = _env_seconds("LABMGR_METRICS_DOWNSAMPLE_EVERY", 60)
# The bearer token a Prometheus scraper sends for GET /metrics; unset: the export is off.
LABMGR_METRICS_TOKEN = os.environ.get("LABMGR_METRICS_TOKEN", "")
# A terminal with no keystroke and no output this long is closed.
LABMGR_TERMINAL_IDLE = _env_seconds("LABMGR_TERMINAL_IDLE", 900)
LABMGR_EXEC_TIMEOUT = _env_seconds("LABMGR_EXEC_TIMEOUT", 30)

# --- lab networks --------------------------------------------------------------------------

# Where lab subnets may lie, comma-separated IPv4 CIDRs (default: the RFC 1918 ranges);
# a lab with a subnet outside is refused at save and at deploy (docs/labfile.md).
LABMGR_LAB_SUBNET_POOL = os.environ.get("LABMGR_LAB_SUBNET_POOL") or subnets.DEFAULT_POOL
subnets.parse_pool(LABMGR_LAB_SUBNET_POOL)  # a bad pool stops the start, saying why

# --- reservations ------------------------------------------------------------------------

# Deployments run only inside their owner's active reservation of the host (admins
# exempt); "0" turns the rule off for a single-user install.
LABMGR_REQUIRE_RESERVATION = os.environ.get("LABMGR_REQUIRE_RESERVATION", "1") == "1"
# The owner is warned this long before a reservation ends, and again at one minute.
LABMGR_RESERVATION_WARN_BEFORE = _env_seconds("LABMGR_RESERVATION_WARN_BEFORE", 600)
LABMGR_RESERVATION_TICK_EVERY = _env_seconds("LABMGR_RESERVATION_TICK_EVERY", 15)


# --- fair shares (docs/reservations.md) ----------------------------------------------------


def _env_bound(name: str, default: int) -> int | None:
    """A policy bound: a whole number, 0 for none."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit():
        raise ValueError(f"{name}={text!r}: a whole number (0 for no limit)")
    return int(text) or None


# What a user who is not an admin may book, until an admin saves the reservation policy in
# the admin panel: the longest booking, how far ahead it may start, hours a week and
# bookings not over yet (all hosts together).
LABMGR_RESERVATION_MAX_HOURS = _env_bound("LABMGR_RESERVATION_MAX_HOURS", 8)
LABMGR_RESERVATION_MAX_DAYS_AHEAD = _env_bound("LABMGR_RESERVATION_MAX_DAYS_AHEAD", 14)
LABMGR_RESERVATION_WEEKLY_HOURS = _env_bound("LABMGR_RESERVATION_WEEKLY_HOURS", 20)
LABMGR_RESERVATION_MAX_BOOKINGS = _env_bound("LABMGR_RESERVATION_MAX_BOOKINGS", 3)


def _env_reserve(name: str, default: str) -> str:
    """A reserve: a number (a size like 512M for memory) or a percentage of the machine."""
    text = os.environ.get(name, default).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?(%|[KMGkmg])?", text):
        raise ValueError(f"{name}={text!r}: a number, a size like 512M, or a percentage like 10%")
    return text


# What labs never get of a host's machine, kept for labmgr and the host's own processes
# (a host's reserve in the admin panel overrides it).
LABMGR_HOST_RESERVE_CPUS = _env_reserve("LABMGR_HOST_RESERVE_CPUS", "10%")
LABMGR_HOST_RESERVE_MEMORY = _env_reserve("LABMGR_HOST_RESERVE_MEMORY", "512M")
LABMGR_HOST_RESERVE_PIDS = _env_reserve("LABMGR_HOST_RESERVE_PIDS", "1024")

# The largest image archive (`docker save`, OCI) an admin may upload for a host to load:
# bytes or a size like 2G. It arrives in chunks of at most the body limit (1 MiB).
LABMGR_IMAGE_UPLOAD_MAX = units.parse_size(os.environ.get("LABMGR_IMAGE_UPLOAD_MAX", "2G"))


# --- web hardening (README, security) --------------------------------------------------

# JSON bodies past a nesting bound are a 400 (labmgr.jsondepth), not a RecursionError.
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = [
    "labmgr.api.parsers.BoundedJSONParser",
    "rest_framework.parsers.FormParser",
    "rest_framework.parsers.MultiPartParser",
]
# Token first: an API client without credentials gets 401 and a WWW-Authenticate header.
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "labmgr.accounts.authentication.ExpiringTokenAuthentication",
    "rest_framework.authentication.SessionAuthentication",
]
# An API token is refused this long after it was issued (POST /api/token gives a fresh
# one); 0: tokens never expire.
LABMGR_API_TOKEN_TTL = _env_seconds("LABMGR_API_TOKEN_TTL", 30 * 86400)

# Failed logins (the login page, the admin's, POST /api/token) are counted per user name
# and client address by django-axes; past the limit that pair is refused (429, the site's
# page or the API's error) for the cool-off, counted from the last failure. A success
# before then starts the count again.
INSTALLED_APPS.append("axes")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Above the body size check, so synchronous too (see its note in MIDDLEWARE).
MIDDLEWARE.insert(
    MIDDLEWARE.index("labmgr.middleware.BodySizeLimitMiddleware"), "axes.middleware.AxesMiddleware"
)
LABMGR_LOGIN_MAX_FAILURES = int(os.environ.get("LABMGR_LOGIN_MAX_FAILURES", "5"))
LABMGR_LOGIN_COOLOFF = _env_seconds("LABMGR_LOGIN_COOLOFF", 900)
if LABMGR_LOGIN_MAX_FAILURES < 1 or LABMGR_LOGIN_COOLOFF <= 0:
    raise ValueError("LABMGR_LOGIN_MAX_FAILURES and LABMGR_LOGIN_COOLOFF must be above 0")
AXES_FAILURE_LIMIT = LABMGR_LOGIN_MAX_FAILURES
AXES_COOLOFF_TIME = LABMGR_LOGIN_COOLOFF / 3600  # hours, as django-axes counts them
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts during a lockout do not make it longer: the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "labmgr.accounts.lockout.lockout_response"
AXES_VERBOSE = False

# Cookies: never readable by scripts except the CSRF token (static/web/js/api.js sends
# it back), never sent on cross-site requests other than top-level navigation.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# LABMGR_TLS=1: labmgr is reached over HTTPS only (uvicorn with a certificate, or a proxy
# in front). Cookies are sent over HTTPS only, plain http is redirected, and browsers are
# told to use HTTPS for a year (HSTS, subdomains too). Without it the embedded default
# serves plain http on 127.0.0.1.
LABMGR_TLS = os.environ.get("LABMGR_TLS") == "1"
if LABMGR_TLS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 365 * 86400
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Asking to be on the browsers' built-in HTTPS list is the domain owner's decision.
    SECURE_HSTS_PRELOAD = os.environ.get("LABMGR_HSTS_PRELOAD") == "1"
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # Behind a proxy that terminates TLS: the header it sets on HTTPS requests, as
    # "X-Forwarded-Proto: https". Set it only when the proxy always sets or strips it.
    if _proxy_header := os.environ.get("LABMGR_PROXY_SSL_HEADER", "").strip():
        _name, _, _value = _proxy_header.partition(":")
        SECURE_PROXY_SSL_HEADER = (
            "HTTP_" + _name.strip().upper().replace("-", "_"),
            _value.strip(),
        )
