#!/usr/bin/env bash
# Prints how long lab takes on this machine: create (and each bootstrap stage), stop, start,
# reset, and every drill with the outcome it reported. It makes its own lab (bench, on
# 10.250.0.0/24) and destroys it at the end; nothing else is touched.
#   scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
lab() { target/release/lab "$@" --name bench; }
log=$(mktemp)
trap 'rm -f "$log"; target/release/lab destroy --name bench >/dev/null 2>&1 || true' EXIT

# Runs a lab command, prints its wall time and the last line it reported.
measure() {
    local what=$1; shift
    local start end
    start=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        echo "$what failed:"; cat "$log"; exit 1
    fi
    end=$(date +%s.%N)
    printf '%-22s %6.1f s  %s\n' "$what" "$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" \
        "$(grep '✓' "$log" | tail -n 1 | sed 's/^.*✓ //')"
}

target/release/lab destroy --name bench >/dev/null 2>&1 || true
target/release/lab image build >/dev/null
measure "create" lab create --subnet 10.250.0.0/24
grep -E '^bootstrap: ' "$log" | sed 's/^/                         /'
measure "stop" lab stop
measure "start" lab start
# The node that has a Patroni role ($6 in `lab status`) right now.
with_role() { lab status | awk -v r="$1" '$6 == r { print $1; exit }'; }
measure "switchover" lab switchover --to "$(with_role replica)"
primary=$(with_role primary)
measure "kill the primary" lab kill "$primary"
measure "restart it" lab start "$primary"
replica=$(with_role replica)
measure "partition a replica" lab partition "$replica"
measure "heal it" lab heal "$replica"
primary=$(with_role primary)
measure "partition the primary" lab partition "$primary"
measure "heal it" lab heal "$primary"
measure "etcd: stop 3 of 5" lab etcd stop bench3 bench4 bench5
measure "etcd: start them" lab etcd start bench3 bench4 bench5
measure "reset" lab reset
measure "destroy" lab destroy
