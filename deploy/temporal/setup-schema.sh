#!/bin/sh
# One-shot: creates the Temporal and visibility databases in PostgreSQL and brings both
# schemas to the version the pinned server needs. Safe to run again (update-schema is).
set -eu
PW=$(cat /run/secrets/postgres_password)
SCHEMA=/etc/temporal/schema/postgresql/v12
tool() { temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u temporal --pw "$PW" "$@"; }
for db in temporal temporal_visibility; do
  tool --db "$db" create-database 2>/dev/null || echo "database $db exists"
done
tool --db temporal setup-schema -v 0.0 2>/dev/null || true
tool --db temporal update-schema -d "$SCHEMA/temporal/versioned"
tool --db temporal_visibility setup-schema -v 0.0 2>/dev/null || true
tool --db temporal_visibility update-schema -d "$SCHEMA/visibility/versioned"
echo "schemas ready"
