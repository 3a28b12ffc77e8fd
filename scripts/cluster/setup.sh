#!/bin/sh
# Sets up a Temporal cluster on PostgreSQL for this project, in two steps that both the topology
# script (`npm run cluster`, src/cluster/) and docker-compose.yml (temporalio/admin-tools) run:
#
#   setup.sh schema      databases and schemas, before the server starts (temporal-sql-tool)
#   setup.sh namespace   the namespace and our search attributes, once the server answers (temporal CLI)
#
# Both steps are idempotent: a second start of the cluster runs them again and changes nothing.
# POSIX sh, because admin-tools is an Alpine image (busybox sh).
#
# Environment (the names of the Temporal server's own config template and of docker-compose.yml):
#   POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, POSTGRES_PWD   PostgreSQL host, port and credentials
#   DBNAME, VISIBILITY_DBNAME                              databases (temporal, temporal_visibility)
#   SQL_TOOL                                               temporal-sql-tool binary (default: on PATH)
#   SCHEMA_DIR                                             the server's schema/ directory (default: admin-tools')
#   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE                   frontend host:port and namespace
#   TEMPORAL_CLI                                           temporal CLI binary (default: on PATH)
#   NAMESPACE_RETENTION                                    retention of a namespace created here (default 72h)
set -eu

: "${POSTGRES_SEEDS:=127.0.0.1}" "${DB_PORT:=5432}" "${POSTGRES_USER:=temporal}" "${POSTGRES_PWD:=temporal}"
: "${DBNAME:=temporal}" "${VISIBILITY_DBNAME:=temporal_visibility}"
: "${SQL_TOOL:=temporal-sql-tool}" "${SCHEMA_DIR:=/etc/temporal/schema}"
: "${TEMPORAL_ADDRESS:=127.0.0.1:7233}" "${TEMPORAL_NAMESPACE:=default}" "${TEMPORAL_CLI:=temporal}"
: "${NAMESPACE_RETENTION:=72h}"

sql() {
  db="$1"
  shift
  "$SQL_TOOL" --plugin postgres12 --endpoint "$POSTGRES_SEEDS" --port "$DB_PORT" \
    --user "$POSTGRES_USER" --password "$POSTGRES_PWD" --database "$db" "$@"
}

# One database with its schema at the version the server binary expects (schema/postgresql/v12/<name>).
schema() {
  db="$1"
  dir="$SCHEMA_DIR/postgresql/v12/$2"
  echo "setup: database $db, schema $dir"
  if ! out=$(sql "$db" create-database 2>&1); then
    # The only failure a second start may see; anything else is real.
    echo "$out" | grep -q 'already exists' || { echo "$out" >&2; exit 1; }
  fi
  # Version 0.0 creates the schema_version bookkeeping once; update-schema then applies every versioned step
  # up to the newest, and skips the ones already applied.
  if ! out=$(sql "$db" setup-schema -v 0.0 2>&1); then
    echo "$out" | grep -qi 'already exists' || { echo "$out" >&2; exit 1; }
  fi
  sql "$db" update-schema -d "$dir/versioned"
}

cli() {
  "$TEMPORAL_CLI" --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" "$@"
}

namespace() {
  # The frontend answers before the namespace registry has loaded; a few seconds of retries.
  tries=0
  until cli operator namespace describe >/dev/null 2>&1; do
    if cli operator namespace create --retention "$NAMESPACE_RETENTION" >/dev/null 2>&1; then
      echo "setup: namespace $TEMPORAL_NAMESPACE created"
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "setup: namespace $TEMPORAL_NAMESPACE not ready after 60 tries" >&2; exit 1; }
    sleep 1
  done

  # src/observability/search-attributes.ts REQUEST_SEARCH_ATTRIBUTES, all of type Keyword.
  for name in FalModelId FalOwner FalState FalErrorType; do
    cli operator search-attribute list | grep -qw "$name" ||
      cli operator search-attribute create --name "$name" --type Keyword
  done

  # A start that names the attributes fails with "has no mapping defined for search attribute" for a moment after
  # they are registered: the cluster is ready once a probe workflow starts with all of them.
  tries=0
  probe="cluster-setup-probe-$$"
  until cli workflow start --task-queue cluster-setup-probe --type probe --workflow-id "$probe" \
    --search-attribute 'FalModelId="cluster-setup-probe"' --search-attribute 'FalOwner="cluster-setup"' \
    --search-attribute 'FalState="COMPLETED"' --search-attribute 'FalErrorType="none"' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "setup: search attributes still unusable after 60 tries" >&2; exit 1; }
    sleep 0.5
  done
  # Deleted rather than left running or terminated: it would show in operators' visibility queries.
  cli workflow delete --workflow-id "$probe" --yes >/dev/null
  echo "setup: namespace $TEMPORAL_NAMESPACE ready with search attributes FalModelId FalOwner FalState FalErrorType"
}

case "${1:-}" in
  schema)
    schema "$DBNAME" temporal
    schema "$VISIBILITY_DBNAME" visibility
    ;;
  namespace) namespace ;;
  *)
    echo "usage: $0 schema|namespace" >&2
    exit 2
    ;;
esac
