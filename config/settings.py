"""Paperboy settings: one file, driven by environment variables (see .env.example).

The defaults make a fresh clone work with no server at all: SQLite and a file-system Celery
broker under var/, emails written to var/outbox/. Each variable is parsed strictly, so a typo
fails at start-up instead of silently falling back to a default.
"""

import os
import re
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

# Lets admin and queryset classes be subscripted at run time, as the type hints want.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PAPERBOY_VAR_DIR") or BASE_DIR / "var")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"Unexpected value {name}={value}, use true or false")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Unexpected value {name}={raw}, use a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"Unexpected value {name}={raw}, use at least {minimum}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", "true")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=false")
    SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"

SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")
_site = urlsplit(SITE_URL)
if _site.scheme not in ("http", "https") or not _site.hostname:
    raise ImproperlyConfigured(f"Unexpected value SITE_URL={SITE_URL}, use http(s)://host[:port]")
SITE_NAME = env_str("SITE_NAME", "Paperboy")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or [_site.hostname]
if DEBUG:
    ALLOWED_HOSTS += ["localhost", "127.0.0.1", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "csp",
    "anymail",
    "papers",
    "newsletter",
]
# Development-only tooling (devtools/: the benchmark, the fault injection, their harness) is an
# app when DEVTOOLS says so, by default with DEBUG; the production image leaves it out.
_devtools_here = (BASE_DIR / "devtools" / "apps.py").exists()
DEVTOOLS = env_bool("DEVTOOLS", "true" if DEBUG and _devtools_here else "false")
if DEVTOOLS:
    if not _devtools_here:
        raise ImproperlyConfigured(
            "DEVTOOLS=true, but devtools/ is not here (the production image leaves it out)"
        )
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]
# Brute-force protection on the admin login (django-axes): after AXES_FAILURE_LIMIT failed
# logins for one username from one IP, that pair is locked out for AXES_COOLOFF_HOURS.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_HOURS", 1, minimum=1)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every manage.py command

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
    {
        # Emails (templates/emails/): Jinja2, because every digest is rendered, and fast.
        "NAME": "emails",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "newsletter.emails.environment"},
    },
]

# --- Database ---------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'paperboy.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except Exception as exc:  # dj-database-url raises several types for a malformed URL
    raise ImproperlyConfigured(f"Unexpected value DATABASE_URL={DATABASE_URL}: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs web, worker and beat against one SQLite file: wait for locks, don't fail.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits) -------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery ----------------------------------------------------------------------------------
# The file-system broker ignores the host; naming one keeps kombu from warning that none was given.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "broker" / "control"),  # exchanges (default: the cwd)
        "store_processed": False,
    }
else:
    # A task not acknowledged within this time is delivered again; keep it above the time limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", "false")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One queue per kind of work. A worker started without -Q consumes them all (make demo, one
# host); past one machine, give each host the queues it should run, e.g. `-Q compose` on
# CPU-heavy hosts and `-Q send` near the provider (BENCHMARKS.md, "Scale out").
# CELERY_QUEUE_PREFIX keeps deployments that share one broker apart (bench_digests uses it).
QUEUE_PREFIX = env_str("CELERY_QUEUE_PREFIX", "")
CELERY_TASK_DEFAULT_QUEUE = f"{QUEUE_PREFIX}celery"
CELERY_TASK_QUEUES = [
    Queue(QUEUE_PREFIX + name) for name in ("celery", "ingest", "compose", "send")
]
CELERY_TASK_ROUTES = {
    "papers.tasks.*": {"queue": f"{QUEUE_PREFIX}ingest"},
    "newsletter.tasks.compose_digest_chunk": {"queue": f"{QUEUE_PREFIX}compose"},
    "newsletter.tasks.send_queued_digests": {"queue": f"{QUEUE_PREFIX}send"},
}
# Seconds between the hourly Daily Papers imports. Beat writes it into its schedule (the
# admin's periodic tasks) as it starts: an edit made there lasts until beat restarts.
PAPERS_IMPORT_EVERY = env_int("PAPERS_IMPORT_EVERY", 3600, minimum=60)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "import-daily-papers": {
        "task": "papers.tasks.import_daily_papers",
        "schedule": float(PAPERS_IMPORT_EVERY),
    },
}

# --- Email ------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "newsletter.outbox.EmlOutboxBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "outbox")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", "false")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Paperboy <digest@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_SUBJECT_PREFIX = f"[{env_str('SITE_NAME', 'Paperboy')}] "
# Staff who get operational alerts (a source gone silent), comma separated:
# "Ops <ops@example.org>, admin@example.org".
ADMINS = [parseaddr(entry) for entry in env_list("ADMINS")]
for _name, _address in ADMINS:
    if "@" not in _address:
        raise ImproperlyConfigured(
            f"Unexpected value ADMINS={os.environ.get('ADMINS')}, use addresses separated by commas"
        )
# Every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], e.g. ANYMAIL_POSTMARK_SERVER_TOKEN.
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
# Basic-auth credentials the provider webhooks must send, "user:password"; comma-separate
# several to rotate. Required outside DEBUG (check newsletter.E001).
if "WEBHOOK_SECRET" in ANYMAIL:
    ANYMAIL["WEBHOOK_SECRET"] = env_list("ANYMAIL_WEBHOOK_SECRET")  # type: ignore[assignment]

# --- Papers -----------------------------------------------------------------------------------
PAPERS_FETCH_TIMEOUT = env_int("PAPERS_FETCH_TIMEOUT", 20, minimum=1)
PAPERS_FETCH_RETRIES = env_int("PAPERS_FETCH_RETRIES", 3, minimum=0)
# First wait between tries, doubled each time (with jitter).
PAPERS_FETCH_BACKOFF = env_int("PAPERS_FETCH_BACKOFF_MS", 1000, minimum=0) / 1000
# A server's Retry-After up to this many seconds is waited out in the task; a longer one
# leaves the task to try again later (after PAPERS_RETRY_LATER_SECONDS, doubled each time).
PAPERS_FETCH_MAX_WAIT = env_int("PAPERS_FETCH_MAX_WAIT", 60, minimum=0)
PAPERS_FETCH_RETRY_LATER = env_int("PAPERS_RETRY_LATER_SECONDS", 300, minimum=1)
# Seconds between two requests to arXiv, across every worker (arXiv asks for 3).
PAPERS_POLITE_INTERVAL = env_int("PAPERS_ARXIV_REQUEST_INTERVAL", 3, minimum=0)
PAPERS_HF_API_URL = env_str("PAPERS_HF_API_URL", "https://huggingface.co/api/daily_papers")
# One paper by arXiv id: the Daily Papers single-paper API, then the arXiv API.
PAPERS_HF_PAPER_API_URL = env_str("PAPERS_HF_PAPER_API_URL", "https://huggingface.co/api/papers")
PAPERS_ARXIV_API_URL = env_str("PAPERS_ARXIV_API_URL", "https://export.arxiv.org/api/query")
# arXiv's announcement feed, imported once per announcement (Sunday to Thursday, 20:00 US
# Eastern) for these categories; beat checks every PAPERS_ARXIV_CHECK_EVERY seconds whether
# the latest one is imported, which also catches up after downtime.
PAPERS_ARXIV_CATEGORIES = env_list("PAPERS_ARXIV_CATEGORIES", "cs.LG,cs.CL,cs.CV,cs.AI,stat.ML")
for _category in PAPERS_ARXIV_CATEGORIES:
    if not re.fullmatch(r"[a-z-]+(\.[A-Za-z-]+)?", _category):
        raise ImproperlyConfigured(
            f"Unexpected value PAPERS_ARXIV_CATEGORIES={','.join(PAPERS_ARXIV_CATEGORIES)}: "
            f"{_category!r} is no arXiv category, use e.g. cs.LG,stat.ML"
        )
PAPERS_ARXIV_RSS_URL = env_str("PAPERS_ARXIV_RSS_URL", "https://rss.arxiv.org/rss").rstrip("/")
PAPERS_ARXIV_CHECK_EVERY = env_int("PAPERS_ARXIV_CHECK_EVERY", 900, minimum=10)
CELERY_BEAT_SCHEDULE["import-arxiv"] = {
    "task": "papers.tasks.import_arxiv",
    "schedule": float(PAPERS_ARXIV_CHECK_EVERY),
}
# A scheduled source that has produced no papers for this long is an incident: staff (ADMINS)
# get one email about it. arXiv's longest quiet spell, Thursday's to Sunday's announcement,
# is 72 hours.
PAPERS_SOURCE_SILENT_HOURS = env_int("PAPERS_SOURCE_SILENT_HOURS", 80, minimum=1)
CELERY_BEAT_SCHEDULE["check-sources"] = {
    "task": "papers.tasks.check_sources",
    "schedule": 3600.0,
}
PAPERS_PER_PAGE = env_int("PAPERS_PER_PAGE", 20, minimum=1)
# Largest file the admin's import tool accepts.
PAPERS_MAX_UPLOAD_BYTES = env_int("PAPERS_MAX_UPLOAD_BYTES", 20_000_000, minimum=1)

# --- Newsletter ---------------------------------------------------------------------------------
# The sender's postal address, shown in every email's footer (required by anti-spam laws).
NEWSLETTER_POSTAL_ADDRESS = env_str(
    "NEWSLETTER_POSTAL_ADDRESS", "Paperboy, 1 Example Street, Nowhere"
)
# Where replies go (empty: to the sender).
NEWSLETTER_REPLY_TO = env_str("NEWSLETTER_REPLY_TO", "")
# Days a confirmation link works; days after which unconfirmed signups are deleted.
NEWSLETTER_CONFIRM_DAYS = env_int("NEWSLETTER_CONFIRM_DAYS", 7, minimum=1)
NEWSLETTER_PURGE_PENDING_AFTER_DAYS = env_int("NEWSLETTER_PURGE_PENDING_AFTER_DAYS", 7, minimum=1)
# Signup attempts allowed per IP per 10 minutes, and per address per hour.
NEWSLETTER_SIGNUPS_PER_IP = env_int("NEWSLETTER_SIGNUPS_PER_IP", 5, minimum=1)
NEWSLETTER_SIGNUPS_PER_ADDRESS = env_int("NEWSLETTER_SIGNUPS_PER_ADDRESS", 3, minimum=1)
# Digests that soft-bounce in a row (no delivery in between) before mail to an address stops.
NEWSLETTER_SOFT_BOUNCE_LIMIT = env_int("NEWSLETTER_SOFT_BOUNCE_LIMIT", 3, minimum=1)
CELERY_BEAT_SCHEDULE["purge-unconfirmed-signups"] = {
    "task": "newsletter.tasks.purge_unconfirmed",
    "schedule": 6 * 3600.0,
}

# --- Digests ----------------------------------------------------------------------------------
# Seconds between dispatch rounds (beat claims due subscribers and queues chunks).
DIGEST_DISPATCH_EVERY = env_int("DIGEST_DISPATCH_EVERY", 300, minimum=10)
DIGEST_CHUNK_SIZE = env_int("DIGEST_CHUNK_SIZE", 200, minimum=1)
# A claim no task finished within this many minutes is claimed again.
DIGEST_CLAIM_LEASE_MINUTES = env_int("DIGEST_CLAIM_LEASE_MINUTES", 15, minimum=1)
# Candidates: papers listed within this many days (and since the previous digest).
DIGEST_DAILY_WINDOW_DAYS = env_int("DIGEST_DAILY_WINDOW_DAYS", 2, minimum=1)
DIGEST_WEEKLY_WINDOW_DAYS = env_int("DIGEST_WEEKLY_WINDOW_DAYS", 8, minimum=1)
# Relevance (cosine similarity, percent) below which a paper is never picked.
DIGEST_RELEVANCE_FLOOR = env_int("DIGEST_RELEVANCE_FLOOR_PERCENT", 8, minimum=0) / 100
# A pretrained static embedding model (model2vec) for semantic relevance: a local path or a
# model name on the Hugging Face hub, loaded once per worker as it starts. Empty: semantics
# are learnt from the catalogue itself (latent semantic analysis), nothing is downloaded.
PAPERS_EMBEDDING_MODEL = env_str("PAPERS_EMBEDDING_MODEL", "")
# When nothing passes the floor: "trending" (default) mails a short "nothing matched" email
# with the top trending papers and a link to broaden the profile, so a digest never silently
# stops coming; "skip" sends nothing for that period.
DIGEST_WHEN_NOTHING_MATCHES = env_str("DIGEST_WHEN_NOTHING_MATCHES", "trending")
if DIGEST_WHEN_NOTHING_MATCHES not in ("skip", "trending"):
    raise ImproperlyConfigured(
        f"Unexpected value DIGEST_WHEN_NOTHING_MATCHES={DIGEST_WHEN_NOTHING_MATCHES}, "
        "use skip or trending"
    )
# Transient send failures are retried this many times, with exponential backoff and jitter.
DIGEST_SEND_RETRIES = env_int("DIGEST_SEND_RETRIES", 6, minimum=0)
DIGEST_RETRY_BASE_SECONDS = env_int("DIGEST_RETRY_BASE_SECONDS", 30, minimum=1)
# The provider's rate limit, shared by all workers through Redis (newsletter/throttle.py):
# messages per second (0: no limit) and how many may go at once after a quiet spell.
DIGEST_SEND_PER_SECOND = env_int("DIGEST_SEND_PER_SECOND", 0, minimum=0)
DIGEST_SEND_BURST = env_int("DIGEST_SEND_BURST", 0, minimum=0)
CELERY_BEAT_SCHEDULE["dispatch-digests"] = {
    "task": "newsletter.tasks.dispatch_digests",
    "schedule": float(DIGEST_DISPATCH_EVERY),
}

# --- Web ---------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_HTTPS_PROXY", "false") else None
)
_https = _site.scheme == "https"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", "true" if _https and not DEBUG else "false")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _https
# HSTS once the site is served over HTTPS (a year); set 0 to turn it off while trying HTTPS out.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _https else 0, minimum=0)
# The site's host only: other subdomains of its domain are not necessarily ours to pin to
# HTTPS, nor is the preload list. Hence the two checks silenced below.
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): our own scripts only, each inline one with the request's
# nonce; inline styles are allowed because emails viewed in the browser carry style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "https:"],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
