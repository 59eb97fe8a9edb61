"""Settings for the treasure hunt: one file, every difference between modes comes from the environment."""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-dev-key-only-for-the-embedded-default")
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0 (production).")

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "hunts",
    "puzzles",
    "accounts",
]

MIDDLEWARE = [
    "treasurehunt.request_log.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "treasurehunt.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "treasurehunt.urls"
WSGI_APPLICATION = "treasurehunt.wsgi.application"
ASGI_APPLICATION = "treasurehunt.asgi.application"
# Threads that run the live stream's database hops in each daphne process (treasurehunt/lanes.py): as many
# as asyncio's default pool, whose place they took.
STREAM_THREADS = min(32, (os.cpu_count() or 1) + 4)
# New connections read at once until their first write, in each daphne process (0: no limit; README,
# "Sizing"; treasurehunt/transport.py, HandshakeGate), and how long one may hold its place.
HANDSHAKES_IN_FLIGHT = env.int("HANDSHAKES_IN_FLIGHT", default=0)
HANDSHAKE_HOLD_SECONDS = env.float("HANDSHAKE_HOLD_SECONDS", default=2.0)
# Threads that run HTTP requests (middleware and view) in each daphne process (treasurehunt/http.py).
HTTP_THREADS = env.int("HTTP_THREADS", default=STREAM_THREADS)

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

# --- Database -------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # The pool is set in code: a ?pool= in the URL would arrive as a string.
    _db["CONN_MAX_AGE"] = 0
    _db["CONN_HEALTH_CHECKS"] = True
    # Server-side parameters and prepared statements: the guess path's statements are planned once per
    # connection (BENCHMARKS.md, "Fixes"). Off behind a pooler in transaction mode.
    if env.bool("DB_PREPARE", default=True):
        _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        # DESIGN's default; deploy/Procfile gives web processes WEB_DB_POOL_MAX (12: README, "Sizing").
        "max_size": env.int("DB_POOL_MAX", default=8),
        "timeout": 10,
    }

# A guess's transaction commits without waiting for its WAL to reach the disk (PostgreSQL's
# synchronous_commit=off for that transaction only, puzzles/services.py): one slow fsync of the database's
# disk no longer holds up every guess committing behind it. The database stays consistent after a crash;
# the guesses of the last moment (at most 3 x wal_writer_delay, 0.6 s by default) before a crash of the
# database server or its machine may be lost, as SQLite's synchronous=NORMAL allows. Set it on to wait.
GUESS_SYNCHRONOUS_COMMIT = env.bool("DB_GUESS_SYNCHRONOUS_COMMIT", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker on n, cache on n+1 (n-1 for n=15), layer prefixed by the SQL database name ---

REDIS_URL = env("REDIS_URL", default="")


def _redis_db_url(url: str, offset: int) -> str:
    """The Redis URL with its database number moved by offset (moved down past the 16th database)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    number = int(path) if path.isdigit() else 0
    moved = number + offset if number + offset <= 15 else number - offset
    return urlunsplit(parts._replace(path=f"/{moved}"))


LAYER_PREFIX = "th-" + Path(str(_db["NAME"])).name

# A Redis that accepts connections but does not answer fails a cache or channel layer call instead of
# holding its thread or task for good (the callers treat it as Redis down).
REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 3}

if REDIS_URL:
    CELERY_BROKER_URL = _redis_db_url(REDIS_URL, 0)
    CACHES = {
        "default": {
            # Django's Redis cache, reusing one client per pool (treasurehunt/cache.py; BENCHMARKS.md).
            "BACKEND": "treasurehunt.cache.RedisCache",
            "LOCATION": _redis_db_url(REDIS_URL, 1),
            "OPTIONS": REDIS_TIMEOUTS,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "treasurehunt.layers.PubSubChannelLayer",  # channels_redis pub/sub, sliced fan-out
            # The same timeouts: a publish fails after 3 s instead of holding the socket, and every publish
            # queued behind it on the connection, for good; so does a SUBSCRIBE that has to open the
            # connection first. Waiting for pushed messages is not bounded by them (the receiver polls
            # with its own 0.1 s timeout).
            "CONFIG": {
                "hosts": [{"address": _redis_db_url(REDIS_URL, 0), **REDIS_TIMEOUTS}],
                "prefix": LAYER_PREFIX,
            },
        }
    }
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CELERY_BROKER_URL = "memory://"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # channels' in-memory layer, sweeping expired entries once a second (treasurehunt/layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "treasurehunt.layers.InMemoryLayer"}}
    # Tasks run in-process, after commit, through the same enqueue helper.
    CELERY_TASK_ALWAYS_EAGER = True

CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# An unacknowledged task (its worker was killed) is redelivered after 5 minutes; the sweeper re-enqueues the
# work it stands for within seconds, so this only bounds how long a lost message lingers.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 300,
    "socket_connect_timeout": 2,
    "socket_timeout": 3,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat wait out a broker outage instead of exiting (honcho would stop the whole stack).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A check running when the broker goes away finishes and commits its verdict; its message, which can no
# longer be acknowledged, comes back after the visibility timeout and finds nothing to do.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Enqueueing happens after commit inside a request: with the broker down it gives up within about a second
# (logged; the sweeper enqueues the work again) instead of holding the response.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_ROUTES = {
    "puzzles.tasks.judge_guess_task": {"queue": "judge"},
    "puzzles.tasks.claim_treasures_task": {"queue": "treasure"},
    "puzzles.tasks.tick": {"queue": "clock"},
    "puzzles.tasks.sweep": {"queue": "clock"},
}

# --- Auth -------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Password reset mails: printed on the console by default (the embedded mode); set EMAIL_BACKEND to
# django.core.mail.backends.smtp.EmailBackend and the EMAIL_* values to send them.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Treasure Hunt <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# Failed logins, per (username, address) pair and per address, within the window.
LOGIN_FAILURES_PER_PAIR = env.int("LOGIN_FAILURES_PER_PAIR", default=10)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=50)
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}

# --- REST API ---------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hunts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hunts.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # No multipart: nothing in the API uploads files, and daphne (Twisted) answers a malformed multipart
    # body itself with an empty, undocumented 400 before Django sees the request.
    "DEFAULT_PARSER_CLASSES": ["hunts.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Treasure Hunt API",
    "DESCRIPTION": "Teams, puzzles, guesses, hints, treasures and the event log of a live treasure hunt.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Production (DJANGO_DEBUG=0): HTTPS on, each switch overridable ------------------

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe the daphne processes directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Logging ----------------------------------------------------------------------------

# One line per record: "plain" for people, "json" (the production default) for log collectors. Both carry the
# request id (X-Request-ID) of the request being served; json also the `extra` fields (guess_id, ...).
LOG_FORMAT = env("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "treasurehunt.request_log.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "treasurehunt.request_log.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# --- Hunt knobs that are deploy-time values ---------------------------------------------

CLOCK_INTERVAL_SECONDS = env.float("CLOCK_INTERVAL_SECONDS", default=1.0)
# The embedded clock runs inside daphne; tests switch it off and call release_due.
EMBEDDED_CLOCK = env.bool("EMBEDDED_CLOCK", default=not REDIS_URL)
LEADERBOARD_CACHE_SECONDS = 300
