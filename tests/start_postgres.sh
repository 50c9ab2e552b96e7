#!/usr/bin/env bash
# Start the machine's PostgreSQL (Debian's postgresql package) for the feedback-store tests and make sure
# the test role and database exist: role r1tune (password r1tune, may create databases), database
# r1tune_test, on the first cluster's port. Each test then creates and drops its own database.
# Idempotent. Without root or without PostgreSQL it only warns: those tests are then skipped, unless
# R1TUNE_REQUIRE_POSTGRES=1 (CI), where they fail.
set -u

warn() { echo "warning: $* (the PostgreSQL store tests will be skipped)" >&2; exit 0; }

[ "$(id -u)" = 0 ] || warn "not root: cannot start PostgreSQL"
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) \
    >/dev/null 2>&1 || warn "could not install postgresql"
fi
if [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_createcluster "$version" main >/dev/null || warn "could not create a PostgreSQL cluster"
fi
read -r version name port status _ <<<"$(pg_lsclusters --no-header | head -1)"
if [ "$status" != online ]; then
  pg_ctlcluster "$version" "$name" start || warn "could not start PostgreSQL $version/$name"
fi
[ "$port" = 5432 ] || echo "note: PostgreSQL listens on $port; set R1TUNE_TEST_POSTGRES_URL accordingly" >&2

psql_admin() { su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -tAq -c \"$1\""; }
[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'r1tune'")" = 1 ] \
  || psql_admin "CREATE ROLE r1tune LOGIN PASSWORD 'r1tune' CREATEDB" || warn "could not create the test role"
[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'r1tune_test'")" = 1 ] \
  || psql_admin "CREATE DATABASE r1tune_test OWNER r1tune" || warn "could not create the test database"
