#!/usr/bin/env bash
# The home page and the signup POST under load (BENCHMARKS.md, "The home page under load"):
# gunicorn with 2 workers against DATABASE_URL and REDIS_URL, DEBUG off, then wrk on loopback
# with 16 connections. Needs wrk (apt-get install wrk) and a database with papers in it
# (manage.py load_demo_papers). REDIS_URL must be a scratch database: it is flushed; so must
# CELERY_BROKER_URL be: the confirmations the signups queue are purged at the end. PORT
# (default 8102) and DURATION (seconds per GET and signup run, default 30) may be set.
# Scratch signups go to addresses ending in @load.example and are deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8102} DURATION=${DURATION:-30}
URL=http://127.0.0.1:$PORT
BIN=.venv/bin
export DEBUG=false SECRET_KEY=${SECRET_KEY:-load-test-only} SITE_URL=$URL \
  ALLOWED_HOSTS=127.0.0.1 ANYMAIL_WEBHOOK_SECRET=load:test \
  PAPERBOY_VAR_DIR=${PAPERBOY_VAR_DIR:-/tmp/paperboy-load} \
  EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend LOG_LEVEL=ERROR
mkdir -p "$PAPERBOY_VAR_DIR"
$BIN/python manage.py collectstatic --no-input -v0
redis() { $BIN/python -c "import os,redis; redis.Redis.from_url(os.environ['REDIS_URL']).$1"; }

serve() {  # serve [VARIABLE=value...]: (re)start gunicorn with these settings
  [ -n "${server:-}" ] && kill "$server" && wait "$server" 2>/dev/null || true
  sleep 3  # let requests still queued from the last run finish before counters are reset
  redis "flushdb()"  # the cache: rate-limit counters and the cached home page
  env "$@" $BIN/gunicorn config.wsgi:application --bind 127.0.0.1:"$PORT" --workers 2 \
    --log-level warning 2>>"$PAPERBOY_VAR_DIR/gunicorn.log" & server=$!  # 429s log a line each
  for _ in $(seq 50); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.2; done
}
trap '[ -n "${server:-}" ] && kill "$server"' EXIT
warm_up() {  # a few seconds of signups first: each worker's first ones open its connections
  RUN=warm RATE=50 wrk -t2 -c16 -d3s -s devtools/load/signup.lua "$URL/" >/dev/null
}
signups() {  # signups PREFIX: accepted signup rows whose address starts with PREFIX
  $BIN/python manage.py shell -v0 -c "from newsletter.models import Subscriber as S; \
print(S.objects.filter(email__startswith='$1', email__endswith='@load.example').count())"
}

echo "== $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
serve
curl -s "$URL/" >/dev/null
for path in /healthz / /healthz /; do
  echo "== GET $path"
  wrk -t2 -c16 -d"${DURATION}"s --latency "$URL$path" | grep -E "Requests/sec| 50%| 99%|Non-2xx|Socket"
done

echo "== POST / (signup) at 50 a second, one address each, per-IP limit lifted (wrk is one IP)"
serve NEWSLETTER_SIGNUPS_PER_IP=1000000
warm_up
RUN=paced RATE=50 THREADS=2 wrk -t2 -c16 -d"${DURATION}"s --latency -s devtools/load/signup.lua \
  "$URL/" | grep -E "Requests/sec| 50%| 99%|Non-2xx|Socket|status"
sleep 3; echo "signup rows: $(signups paced-)"

echo "== POST / (signup) as fast as 16 connections go, one address each, per-IP limit lifted"
serve NEWSLETTER_SIGNUPS_PER_IP=1000000
warm_up
RUN=many wrk -t2 -c16 -d"${DURATION}"s --latency -s devtools/load/signup.lua "$URL/" \
  | grep -E "Requests/sec| 50%| 99%|Non-2xx|Socket|status"
sleep 3; echo "signup rows: $(signups many-) (wrk counts only the answers it saw before it stopped)"

echo "== POST / (signup), per-IP limit 300: exactly 300 accepted, the rest 429"
serve NEWSLETTER_SIGNUPS_PER_IP=300
RUN=ip wrk -t2 -c16 -d10s -s devtools/load/signup.lua "$URL/" | grep -E "Requests/sec|status"
sleep 3; echo "signup rows: $(signups ip-)"

echo "== POST / (signup), one address from 16 connections at once, per-address limit 3"
serve NEWSLETTER_SIGNUPS_PER_IP=1000000 NEWSLETTER_SIGNUPS_PER_ADDRESS=3
SIGNUP_EMAIL=same@load.example wrk -t2 -c16 -d10s -s devtools/load/signup.lua "$URL/" \
  | grep -E "Requests/sec|status"

$BIN/python manage.py shell -v0 -c "from newsletter.models import Subscriber as S; \
S.objects.filter(email__endswith='@load.example').delete()"
$BIN/celery -A config purge -f -Q "${CELERY_QUEUE_PREFIX:-}celery" >/dev/null
