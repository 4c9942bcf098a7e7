#!/usr/bin/env bash
# CI: a PostgreSQL server for the store's tests, on a fresh Debian machine, as root.
#
# Installs PostgreSQL from Debian, starts a cluster listening on 127.0.0.1, creates a
# role and a database for the tests, installs psycopg, and prints the line to export:
#
#   .ci/postgres.sh FILE && source FILE   # writes the line to FILE too (use this
#                                         # under set -e: eval "$(...)" hides failures)
#   eval "$(.ci/postgres.sh)"             # interactive use
#
# Idempotent: a second run finds everything in place and only prints the URL again.
# Progress goes to stderr, so stdout is only the export line. Override the defaults
# with SPACY_AL_PG_USER, SPACY_AL_PG_PASSWORD, SPACY_AL_PG_DB, SPACY_AL_PG_PORT.
set -euo pipefail

PG_USER=${SPACY_AL_PG_USER:-spacy_al}
PG_PASSWORD=${SPACY_AL_PG_PASSWORD:-spacy_al}
PG_DB=${SPACY_AL_PG_DB:-spacy_al_test}
PG_PORT=${SPACY_AL_PG_PORT:-5432}
CLUSTER=main
PYTHON=${PYTHON:-python}

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it installs packages and starts a server)"
  exit 1
fi

# 1. Packages. Debian's postgresql package creates the cluster "main" on install.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

# 2. The cluster: create it if missing, listen on 127.0.0.1 only, start it if down.
if ! pg_lsclusters --no-header | awk '{print $1 "/" $2}' | grep -qx "$VERSION/$CLUSTER"; then
  log "creating cluster $VERSION/$CLUSTER on port $PG_PORT"
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PG_PORT" >&2
fi
# Our settings in a drop-in (Debian's postgresql.conf reads conf.d last).
CONF=/etc/postgresql/$VERSION/$CLUSTER/conf.d/spacy_al.conf
WANTED=$(printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$PG_PORT")
CHANGED=0
if [ "$(cat "$CONF" 2>/dev/null || true)" != "$WANTED" ]; then
  mkdir -p "$(dirname "$CONF")"
  echo "$WANTED" >"$CONF"
  chown postgres:postgres "$CONF"
  CHANGED=1
fi
STATUS=$(pg_lsclusters --no-header | awk -v c="$VERSION/$CLUSTER" '$1 "/" $2 == c {print $4}')
if [ "$STATUS" = online ] && [ "$CHANGED" = 1 ]; then
  log "restarting cluster $VERSION/$CLUSTER for the new settings"
  pg_ctlcluster "$VERSION" "$CLUSTER" restart >&2
elif [ "$STATUS" != online ]; then
  log "starting cluster $VERSION/$CLUSTER"
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "server not ready on 127.0.0.1:$PG_PORT"; exit 1; }

# 3. Role and database (password auth over TCP, as Debian's pg_hba.conf asks).
psql_admin() { (cd / && runuser -u postgres -- psql -p "$PG_PORT" -X -q -v ON_ERROR_STOP=1 "$@"); }
psql_admin -v user="$PG_USER" -v password="$PG_PASSWORD" >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'user', :'password') \gexec
SQL
if [ -z "$(psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
  log "creating database $PG_DB owned by $PG_USER"
  (cd / && runuser -u postgres -- createdb -p "$PG_PORT" -O "$PG_USER" "$PG_DB")
fi

# 4. The driver SQLAlchemy uses for postgresql+psycopg:// URLs.
if ! "$PYTHON" -c "import psycopg" >/dev/null 2>&1; then
  log "installing psycopg[binary]"
  "$PYTHON" -m pip install --quiet "psycopg[binary]>=3.1" >&2
fi

URL="postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
"$PYTHON" - "$URL" >&2 <<'PY'
import sys

import sqlalchemy as sa

engine = sa.create_engine(sys.argv[1])
with engine.connect() as conn:
    version = conn.execute(sa.text("SHOW server_version")).scalar_one()
engine.dispose()
print(f"postgres.sh: connected, PostgreSQL {version}")
PY

LINE="export SPACY_AL_TEST_POSTGRES_URL=$URL"
if [ $# -ge 1 ]; then
  echo "$LINE" >"$1"
fi
echo "$LINE"
