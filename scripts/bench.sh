#!/usr/bin/env bash
# Prints how long lab takes on this machine, with the image present: a default lab's create
# (and each bootstrap stage), reset and destroy, each the median of BENCH_RUNS runs (3) with the
# spread; the memory a running default lab takes; a class of ten labs (`create --count 10`);
# then what `lab watch` costs a running default lab in CPU (read with curl and jq from the
# Engine's stats); stop, start and every drill with the outcome it reported; then, on a
# colocated lab with HAProxy, when a switchover's and a killed primary's new leader was reached
# through HAProxy's 5000; then what `--monitoring` costs: create time, and idle memory and CPU
# against a plain lab. `scripts/bench.sh serve` measures only what `lab serve` costs: its own
# CPU with the class page open in three headless Chromium sessions, on a class of
# BENCH_SERVE_COUNT (10) labs it makes, or on the labs named in BENCH_SERVE_NAMES ("a b").
# `scripts/bench.sh class [N]` measures only a class of N labs (BENCH_CLASS_COUNT, 10) made with
# `create --count N --name benchcl`: the wall time, the time per lab, and the memory per lab
# (`docker stats` over the class's containers, and the host's MemAvailable before and after,
# both BENCH_SETTLE (30) s after the create); then it destroys the class.
# It makes its own labs (bench on 10.250.0.0/24, benchha on 10.251.0.0/24,
# benchmon on 10.253.0.0/24, the class benchc-a to benchc-j where addresses are free) and
# destroys them at
# the end; nothing else is touched.
#   scripts/bench.sh              everything
#   BENCH_RUNS=1 scripts/bench.sh one run of each
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-3}
cargo build --release --locked --quiet
# Where cargo put it: CARGO_TARGET_DIR when set.
bin=${CARGO_TARGET_DIR:-target}/release/lab
lab() { "$bin" "$@" --name bench; }
ha() { "$bin" "$@" --name benchha; }
class=(benchc-a benchc-b benchc-c benchc-d benchc-e benchc-f benchc-g benchc-h benchc-i benchc-j)
log=$(mktemp)
times=$(mktemp)
# The labs of a class made with --count: NAME-a ... NAME-z, and NAME-aa, NAME-ab, ... beyond 26
# (spec::class_names).
counted=()
class_names() {
    local prefix=$1 n=$2 i letters=abcdefghijklmnopqrstuvwxyz
    counted=()
    for ((i = 0; i < n; i++)); do
        if [ "$n" -le 26 ]; then counted+=("$prefix-${letters:i:1}")
        else counted+=("$prefix-${letters:i/26:1}${letters:i%26:1}"); fi
    done
}
# Destroys the labs of the class named last by class_names, one after the other.
destroy_counted() { for l in "${counted[@]}"; do "$bin" destroy --name "$l" || return 1; done; }
cleanup() {
    rm -f "$log" "$times"
    for l in bench benchha benchmon "${class[@]}" "${counted[@]}"; do "$bin" destroy --name "$l" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# Runs a command, records its wall time in $times, prints it with the last line it reported.
measure() {
    local what=$1; shift
    local start end took
    start=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        echo "$what failed:"; cat "$log"; exit 1
    fi
    end=$(date +%s.%N)
    took=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
    echo "$took" >> "$times"
    printf '%-22s %6s s  %s\n' "$what" "$took" "$(grep '✓' "$log" | tail -n 1 | sed 's/^.*✓ //' | cut -c1-110)"
}

# The median of the times recorded since the last call, with their spread.
summary() {
    sort -n "$times" | awk -v what="$1" '{ t[NR] = $1 } END {
        m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
        printf "%-22s median %.1f s (%.1f to %.1f s over %d run(s))\n", what, m, t[1], t[NR], NR }'
    : > "$times"
}

# The CPU time, in ns, that the running containers of lab $1 have used, as the Engine counts
# it (its stats API, one sample each).
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}
cpu_ns() {
    docker ps -q --filter "label=io.pgha-lab.lab=$1" | while read -r id; do
        curl -s --unix-socket "$socket" "http://localhost/containers/$id/stats?stream=false&one-shot=true"
        echo
    done | jq -s 'map(.cpu_stats.cpu_usage.total_usage) | add'
}

# The % of one core the containers of lab $1 use over $2 seconds.
cpu_over() {
    local before after
    before=$(cpu_ns "$1"); sleep "$2"; after=$(cpu_ns "$1")
    awk -v a="$before" -v b="$after" -v s="$2" 'BEGIN { printf "%.1f", (b - a) / s / 1e7 }'
}

# What `lab watch` costs lab $1: its containers' CPU over 30 s idle, then over 30 s while
# `lab watch` (piped, as in CI) asks them, and lab watch's own CPU meanwhile.
watch_cost() {
    local idle watched watcher own
    idle=$(cpu_over "$1" 30)
    "$bin" watch --name "$1" >/dev/null &
    watcher=$!
    sleep 3 # its first round asks everything at once
    own=$(awk '{ print $14 + $15 }' "/proc/$watcher/stat")
    watched=$(cpu_over "$1" 30)
    own=$(awk -v o="$own" -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15 - o) / hz / 30 * 100 }' "/proc/$watcher/stat")
    kill "$watcher"
    wait "$watcher" 2>/dev/null || true
    echo "lab watch on lab $1: its containers use ${idle}% of a core idle, ${watched}% while watched;" \
        "lab watch itself ${own}% (the Engine's own work for its execs is not counted)"
}

# The % of one core this whole machine is busy (user, system, interrupts: /proc/stat) over $1
# seconds: what lab serve makes the Engine and the nodes do is counted with its own work.
busy_over() {
    local before after
    before=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)
    sleep "$1"
    after=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)
    awk -v a="$before" -v b="$after" -v s="$1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }'
}

# What `lab serve` costs: the machine's CPU over 60 s with the class idle, then over 60 s with
# the class page open in three headless Chromium sessions, each following the class's live
# stream (after 40 s for every lab's poller to start and the first course checks to end), and
# lab serve's own CPU meanwhile. A lab seen only as a row of the class page is asked every
# 10 s, lightly, whatever the number of pages. The labs are $@.
serve_cost() {
    local port=18080 server own idle busy dirs=() browsers=() names=()
    for l in "$@"; do names+=(--name "$l"); done
    idle=$(busy_over 60)
    "$bin" serve --listen "127.0.0.1:$port" "${names[@]}" >/dev/null &
    server=$!
    sleep 2
    for i in 1 2 3; do
        dirs+=("$(mktemp -d)")
        chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="${dirs[-1]}" \
            --remote-debugging-port=0 "http://127.0.0.1:$port/" >/dev/null 2>&1 &
        browsers+=($!)
    done
    sleep 40
    own=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
    busy=$(busy_over 60)
    own=$(awk -v o="$own" -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15 - o) / hz / 60 * 100 }' "/proc/$server/stat")
    polled=$(curl -s "http://127.0.0.1:$port/api/labs" | jq .polled)
    kill "${browsers[@]}" 2>/dev/null || true
    kill -INT "$server"
    wait "$server" 2>/dev/null || true
    rm -rf "${dirs[@]}"
    echo "lab serve with a class of $# lab(s) open in 3 headless browsers: this machine ${idle}% of" \
        "a core with the class idle, ${busy}% with the page open (target: under 10 % more); lab" \
        "serve itself ${own}%; it polled $polled lab(s), one poller each however many pages"
}

if [ "${1:-}" = serve ]; then
    command -v chromium >/dev/null || { echo "bench.sh serve needs chromium (apt-get install chromium)"; exit 1; }
    if [ -n "${BENCH_SERVE_NAMES:-}" ]; then
        read -r -a served <<< "$BENCH_SERVE_NAMES"
    else
        served=("${class[@]:0:${BENCH_SERVE_COUNT:-10}}")
        names=()
        for l in "${served[@]}"; do names+=(--name "$l"); done
        "$bin" image build >/dev/null
        measure "class of ${#served[@]}" "$bin" create --topology colocated "${names[@]}"
    fi
    serve_cost "${served[@]}"
    exit 0
fi

# What a class of $1 labs costs: made with --count, measured once settled, then destroyed.
class_cost() {
    local n=$1 before after stats took
    class_names benchcl "$n"
    "$bin" image build >/dev/null
    before=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    measure "class of $n (--count)" "$bin" create --count "$n" --name benchcl
    took=$(tail -n 1 "$times")
    sleep "${BENCH_SETTLE:-30}"
    after=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    # Every node container of the class: benchcl-a1, benchcl-aa3, ...
    stats=$(docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' | awk '$1 ~ /^benchcl-[a-z]+[0-9]+$/ {
        v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[A-Za-z]+$/, "", v)
        m += (u == "GiB") ? v * 1024 : (u == "KiB") ? v / 1024 : v } END { printf "%.0f", m }')
    awk -v n="$n" -v t="$took" -v s="$stats" -v b="$before" -v a="$after" 'BEGIN {
        printf "class of %d: %.1f s, %.1f s per lab; memory per lab %.0f MiB (docker stats, %.0f MiB for the class), %.0f MiB (MemAvailable drop)\n",
            n, t, t / n, s / n, s, (b - a) / 1024 / n }'
    measure "destroy the class" destroy_counted
}

if [ "${1:-}" = class ]; then
    n=${2:-${BENCH_CLASS_COUNT:-10}}
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh class N: N is a number of labs, not '$n'"; exit 2; }
    class_cost "$n"
    exit 0
fi

cleanup
"$bin" image build >/dev/null
creates=$(mktemp); resets=$(mktemp); destroys=$(mktemp)
for run in $(seq 1 "$runs"); do
    measure "create ($run)" lab create --subnet 10.250.0.0/24
    cat "$times" >> "$creates"; : > "$times"
    grep -E '^bootstrap: ' "$log" | sed 's/^/                         /'
    grep -E 'snapshot for' "$log" | sed 's/^.*✓ /                         /' | cut -c1-140
    if [ "$run" = 1 ]; then
        # What the running lab's containers hold in memory, as `docker stats` counts it.
        docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' | awk '$1 ~ /^bench[0-9]+$/ {
            v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[A-Za-z]+$/, "", v)
            n += (u == "GiB") ? v * 1024 : (u == "KiB") ? v / 1024 : v } END {
            printf "memory of a running default lab: %.0f MiB\n", n }'
    fi
    measure "reset ($run)" lab reset
    cat "$times" >> "$resets"; : > "$times"
    measure "destroy ($run)" lab destroy
    cat "$times" >> "$destroys"; : > "$times"
done
cp "$creates" "$times"; summary "create"
cp "$resets" "$times"; summary "reset"
cp "$destroys" "$times"; summary "destroy"
rm -f "$creates" "$resets" "$destroys"

names=()
for l in "${class[@]}"; do names+=(--name "$l"); done
for run in $(seq 1 "$runs"); do
    measure "class of 10 ($run)" "$bin" create "${names[@]}"
    for l in "${class[@]}"; do "$bin" destroy --name "$l" >/dev/null 2>&1; done
done
summary "create a class of 10"

measure "create" lab create --subnet 10.250.0.0/24
watch_cost bench
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
: > "$times"

echo "HAProxy (colocated lab): the new leader, then when a client through 5000 reached it"
measure "create colocated" ha create --topology colocated --subnet 10.251.0.0/24
for round in 1 2; do
    measure "switchover ($round)" ha switchover
    primary=$(with_role ha primary)
    measure "kill the primary ($round)" ha kill "$primary"
    measure "restart it" ha start "$primary"
done
measure "destroy" ha destroy

echo "Monitoring: a monitored default lab (--monitoring) against a plain one"
mon() { "$bin" "$@" --name benchmon; }
for run in $(seq 1 "$runs"); do
    measure "create plain ($run)" lab create --subnet 10.250.0.0/24
    grep -E '^bootstrap: ' "$log" | sed 's/^/                         /'
    measure "create monitored ($run)" mon create --monitoring --subnet 10.253.0.0/24
    grep -E '^bootstrap: ' "$log" | sed 's/^/                         /'
    if [ "$run" -lt "$runs" ]; then
        lab destroy >/dev/null
        mon destroy >/dev/null
    fi
done
: > "$times"
# Idle cost, once both have settled: memory as `docker stats` counts it, and CPU as the mean of
# 20 samples 3 s apart (each `docker stats` sample spans about a second).
sleep 30
cost() {
    for _ in $(seq 1 20); do
        docker stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}'
        sleep 3
    done | awk -v lab="$1" '$1 ~ ("^" lab "[0-9]+$") {
        cpu = $2; sub(/%/, "", cpu); c += cpu
        v = $3; u = v; gsub(/[0-9.]/, "", u); sub(/[A-Za-z]+$/, "", v)
        m += (u == "GiB") ? v * 1024 : (u == "KiB") ? v / 1024 : v } END {
        printf "%-10s idle: %4.0f MiB, %4.1f %% of a core\n", lab, m / 20, c / 20 }'
}
cost bench
cost benchmon
echo "the monitor node alone, and each exporter node's exporters:"
docker stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}' | awk '$1 == "benchmon6"'
for n in benchmon1 benchmon5; do
    docker exec "$n" ps -o rss=,comm= -C prometheus-post,prometheus-pgba 2>/dev/null |
        awk -v n="$n" '{ printf "%s %s: %.0f MiB\n", n, $2, $1 / 1024 }'
done
measure "reset monitored" mon reset
measure "stop monitored" mon stop
measure "start monitored" mon start
mon destroy >/dev/null
lab destroy >/dev/null
