#!/bin/bash
# Runs once, when the ClickHouse container starts on an empty volume (docker-entrypoint-initdb.d).
# Creates chute's database and a least-privilege user for it; the password comes from the
# chute_password secret and reaches ClickHouse only as its SHA-256 (never in SQL text or logs).
set -euo pipefail
db="${CHUTE_DATABASE:-ingest}"
hash="$(tr -d '\r\n' < /run/secrets/chute_password | sha256sum | cut -d' ' -f1)"
clickhouse-client --host 127.0.0.1 --user "${CLICKHOUSE_USER}" --password "${CLICKHOUSE_PASSWORD}" --multiquery <<SQL
CREATE DATABASE IF NOT EXISTS \`${db}\`;
CREATE USER IF NOT EXISTS chute IDENTIFIED WITH sha256_hash BY '${hash}' SETTINGS PROFILE 'default';
-- chute runs CREATE DATABASE IF NOT EXISTS at start (a no-op here, but it is checked against this grant).
GRANT CREATE DATABASE ON \`${db}\`.* TO chute;
-- Tables on first use, inserts, verification counts, purge (lightweight DELETE), schema-drift approvals.
GRANT CREATE TABLE, INSERT, SELECT, ALTER DELETE, ALTER ADD COLUMN ON \`${db}\`.* TO chute;
SQL
echo "chute user and database ${db} ready"
