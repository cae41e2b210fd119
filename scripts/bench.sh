#!/usr/bin/env bash
# Prints how long lab takes on this machine: create (and each bootstrap stage), stop, start,
# reset, and every drill with the outcome it reported; then, on a colocated lab with HAProxy,
# when a switchover's and a killed primary's new leader was reached through HAProxy's 5000. It
# makes its own labs (bench on 10.250.0.0/24, benchha on 10.251.0.0/24) and destroys them at the
# end; nothing else is touched.
#   scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
lab() { target/release/lab "$@" --name bench; }
ha() { target/release/lab "$@" --name benchha; }
log=$(mktemp)
trap 'rm -f "$log"; for l in bench benchha; do target/release/lab destroy --name $l >/dev/null 2>&1 || true; done' EXIT

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

for l in bench benchha; do target/release/lab destroy --name $l >/dev/null 2>&1 || true; done
target/release/lab image build >/dev/null
measure "create" lab create --subnet 10.250.0.0/24
grep -E '^bootstrap: ' "$log" | sed 's/^/                         /'
measure "stop" lab stop
measure "start" lab start
# The node of lab $1 (a function above) that has Patroni role $2 ($6 in `lab status`) right now.
with_role() { "$1" status | awk -v r="$2" '$6 == r { print $1; exit }'; }
measure "switchover" lab switchover --to "$(with_role lab replica)"
primary=$(with_role lab primary)
measure "kill the primary" lab kill "$primary"
measure "restart it" lab start "$primary"
replica=$(with_role lab replica)
measure "partition a replica" lab partition "$replica"
measure "heal it" lab heal "$replica"
primary=$(with_role lab primary)
measure "partition the primary" lab partition "$primary"
measure "heal it" lab heal "$primary"
measure "etcd: stop 3 of 5" lab etcd stop bench3 bench4 bench5
measure "etcd: start them" lab etcd start bench3 bench4 bench5
measure "reset" lab reset
measure "destroy" lab destroy

echo "HAProxy (colocated lab): the new leader, then when a client through 5000 reached it"
measure "create colocated" ha create --topology colocated --subnet 10.251.0.0/24
for round in 1 2; do
    measure "switchover ($round)" ha switchover
    primary=$(with_role ha primary)
    measure "kill the primary ($round)" ha kill "$primary"
    measure "restart it" ha start "$primary"
done
measure "destroy" ha destroy
