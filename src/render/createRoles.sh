#!/bin/bash
# Patroni's post_bootstrap script: Patroni 4 dropped bootstrap.users, so the roles the course
# needs are made here, once, on the first primary. Patroni passes a connection string as $1.
set -euo pipefail
psql "$1" -v ON_ERROR_STOP=1 --no-psqlrc <<'SQL'
SET password_encryption = '{{password_encryption}}';
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD {{replicator_password}};
ALTER ROLE postgres WITH PASSWORD {{superuser_password}};
SQL
