#!/bin/bash
# The course's /createRoles.sh, Patroni 4's post_bootstrap script (copy it to /pgha/config/):
# Patroni 4 dropped bootstrap.users, so the roles the course needs are made here, once, on the
# first primary. Patroni passes a connection string as $1. The postgres role's password and its
# hashing are the lab's (`lab create --password`, `--md5`); the replication role's is the
# course's, replicator.
set -euo pipefail
settings=/etc/pgha-lab.json

setting() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$settings" "$1"
}
password=$(setting password)
case $(setting auth) in
    md5) encryption=md5 ;;
    *) encryption=scram-sha-256 ;;
esac

psql "${1:-}" -v ON_ERROR_STOP=1 --no-psqlrc -v password="$password" -v encryption="$encryption" <<'SQL'
SET password_encryption = :'encryption';
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator';
ALTER ROLE postgres WITH PASSWORD :'password';
SQL
