#!/usr/bin/env bash
# A second Docker Engine on this machine, for the tests of lab on several engines. It is reached
# three ways, as a remote engine would be:
#   unix://STATE/docker.sock          the Engine API on a socket of its own
#   tcp://127.0.0.2:23760             the same over TCP with TLS, client certificate required
#   ssh://root@127.0.0.1:23722        an sshd of its own whose sessions have DOCKER_HOST set to
#                                     that socket, so `docker system dial-stdio` reaches it
# and it publishes containers' ports on 127.0.0.2 by default (`"ip"` in its daemon.json), so code
# that assumes an engine's ports are on 127.0.0.1 fails against it.
#
#   scripts/second-engine.sh start    start it (does nothing when it already runs); prints env
#   scripts/second-engine.sh env      KEY=VALUE lines for tests: set -a; eval "$(... env)"; set +a
#   scripts/second-engine.sh status   whether it runs and how it is reached (exit 0 runs, 1 not)
#   scripts/second-engine.sh stop     stop it and remove everything it made (safe to repeat)
#
# Tests start it (`start` is idempotent and serialised with flock); scripts/test.sh stops it.
#
# Needs root, dockerd and the docker CLI (a first engine running, whose storage driver it uses),
# openssl, iptables, iproute2 and OpenSSH; openssh-server is installed with apt-get when sshd is
# missing (its service is neither enabled nor started, and /etc/ssh/sshd_config is not used).
# Images are not shared: ship one with `docker save IMAGE | docker -H unix://... load`.
#
# What it touches on the host, and removes on stop:
#   - state dir PGHA_LAB_ENGINE2_DIR (/run/pgha-lab-engine2): configs, certificates, keys, logs,
#     the socket, the engine's exec root;
#   - data root PGHA_LAB_ENGINE2_DATA_ROOT (/var/lib/pgha-lab-engine2), on disk: images go there;
#   - a bridge interface pgha-e2br (10.254.254.1/24), the engine's default bridge, marked as ours
#     by its alias. Never `bridge: none`: that makes dockerd delete the host's docker0;
#   - the bridges (br-ID) of the networks made on it, which dockerd leaves when it stops (stop
#     finds their names in its network store);
#   - one iptables rule, FORWARD -m physdev --physdev-is-bridged -j ACCEPT with the comment
#     pgha-lab-engine2: the engine runs with `iptables: false`, `ip-masq: false`,
#     `ip-forward: false` and so never touches the first engine's chains, but the host's FORWARD
#     policy (DROP) would drop the traffic between containers on one of its networks;
#   - the address 127.0.0.2 (on lo already, as all of 127.0.0.0/8) and TCP ports 23760 and 23722;
#   - /run/sshd (sshd's privilege separation directory) when it was missing.
# The first engine's containers, networks, chains and docker0 are never touched.
set -euo pipefail

dir=${PGHA_LAB_ENGINE2_DIR:-/run/pgha-lab-engine2}
data_root=${PGHA_LAB_ENGINE2_DATA_ROOT:-/var/lib/pgha-lab-engine2}
exec_root=$dir/exec
addr=127.0.0.2
tcp_port=23760
ssh_port=23722
bridge=pgha-e2br
bridge_cidr=10.254.254.1/24
mark=pgha-lab-engine2 # the bridge's alias, the iptables rule's comment, marker files' name
sock=$dir/docker.sock
config=$dir/daemon.json
log=$dir/dockerd.log
pidfile=$dir/dockerd.pid        # dockerd's pid as this script started it
daemon_pidfile=$exec_root/docker.pid # the one dockerd writes itself
tls=$dir/tls                    # the CA's key and the server's certificate
certs=$dir/certs                # the client's, as DOCKER_CERT_PATH wants: ca.pem cert.pem key.pem
ssh_dir=$dir/ssh
sshd_config=$ssh_dir/sshd_config
sshd_pidfile=$ssh_dir/sshd.pid
ssh_config=$dir/ssh_config
ssh_bin=$dir/bin                # an `ssh` that uses ssh_config, for the docker CLI's ssh://
rule=(FORWARD -m physdev --physdev-is-bridged -m comment --comment "$mark" -j ACCEPT)

say() { echo "second-engine: $*" >&2; }
die() { say "$*"; exit 1; }

print_env() {
    cat <<EOF
PGHA_LAB_ENGINE2_UNIX=unix://$sock
PGHA_LAB_ENGINE2_TCP=tcp://$addr:$tcp_port
PGHA_LAB_ENGINE2_CERTS=$certs
PGHA_LAB_ENGINE2_SSH=ssh://root@127.0.0.1:$ssh_port
PGHA_LAB_SSH_CONFIG=$ssh_config
PGHA_LAB_ENGINE2_SSH_PATH=$ssh_bin
PGHA_LAB_ENGINE2_PUBLISH=$addr
EOF
}

# The docker CLI without whatever DOCKER_* the caller has set (a DOCKER_TLS_VERIFY would turn TLS
# on for the unix socket too), and with a limit, so a hung daemon cannot hang us.
dk() { timeout 20 env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_CONTEXT docker "$@"; }
dk2_unix() { dk -H "unix://$sock" "$@"; }
dk2_tcp() {
    dk --tlsverify --tlscacert "$certs/ca.pem" --tlscert "$certs/cert.pem" --tlskey "$certs/key.pem" \
        -H "tcp://$addr:$tcp_port" "$@"
}
ssh2() { timeout 20 ssh -F "$ssh_config" -p "$ssh_port" root@127.0.0.1 "$@"; }

# The pid in FILE when that process lives and its command line holds WORD (this script's own
# config file path), so a pid reused by another process is never taken for ours.
live_pid() {
    local file=$1 word=$2 pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$word" || return 1
    echo "$pid"
}
dockerd_pid() { live_pid "$pidfile" "$config"; }
sshd_pid() { live_pid "$sshd_pidfile" "$sshd_config"; }

# Whether PID lives (a zombie does not: pid 1 may reap our orphans late).
alive() {
    local stat
    stat=$(cat 2>/dev/null <"/proc/$1/stat") || return 1
    stat=${stat##*) } # after the command name, which may hold spaces
    [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

# Sends TERM to PID, waits up to SECONDS for it to go, then KILL.
end_pid() {
    local pid=$1 seconds=$2 what=$3 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < seconds * 5; i++)); do
        if ! alive "$pid"; then
            say "$what (pid $pid) ended in $(printf '%d.%d' $((i / 5)) $((i % 5 * 2)))s"
            return 0
        fi
        sleep 0.2
    done
    say "$what (pid $pid) still runs after ${seconds}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
}

guard_paths() {
    local p
    for p in "$dir" "$data_root"; do
        [[ $p == /?* ]] || die "$p: an absolute path is needed"
        case "${p%/}" in
            / | /run | /var | /var/lib | /var/run | /tmp | /var/lib/docker | /var/run/docker | /run/docker | /run/containerd)
                die "$p: refusing to use it as the second engine's directory" ;;
        esac
    done
}

# Holds the lock on $dir/lock on fd 9 (made anew when stop removed it while we waited).
take_lock() {
    if [ -d "$dir" ] && [ ! -e "$dir/.$mark" ] && has_files "$dir"; then
        die "$dir exists and was not made by this script; not touching it (set PGHA_LAB_ENGINE2_DIR)"
    fi
    while :; do
        mkdir -p "$dir"
        exec 9>>"$dir/lock"
        flock 9
        if [ "/proc/$$/fd/9" -ef "$dir/lock" ]; then return 0; fi
        exec 9>&-
    done
}

# Whether directory D holds anything but our lock file.
has_files() {
    local f
    for f in "$1"/* "$1"/.*; do
        case "${f##*/}" in . | .. | lock | '*' | '.*') ;; *) return 0 ;; esac
    done
    return 1
}

# A directory is ours when it carries the marker file, or is new (missing or empty).
claim_dir() {
    local d=$1
    if [ -e "$d/.$mark" ]; then return 0; fi
    if [ -d "$d" ] && has_files "$d"; then
        die "$d exists and was not made by this script; remove it or set another path"
    fi
    mkdir -p "$d"
    : >"$d/.$mark"
}

# iptables without its warning that iptables-legacy tables exist too (the first engine's are in
# nf_tables, as ours).
ipt() {
    local out
    out=$(iptables "$@" 2>&1) || { echo "$out" >&2; return 1; }
}

port_taken() { ss -Htln "sport = :$1" | grep -q .; }

make_certs() {
    [ -s "$certs/key.pem" ] && [ -s "$tls/server-key.pem" ] && return 0
    say "making a CA, a server certificate (IP:$addr) and a client certificate with openssl"
    mkdir -p "$tls" "$certs"
    local work
    work=$(mktemp -d)
    (
        umask 077
        cd "$work"
        openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca-key.pem
        printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = ca' 'prompt = no' \
            '[dn]' 'CN = pgha-lab engine2 test CA' \
            '[ca]' 'basicConstraints = critical,CA:TRUE' 'keyUsage = critical,keyCertSign,cRLSign' \
            'subjectKeyIdentifier = hash' >ca.cnf
        openssl req -x509 -new -key ca-key.pem -sha256 -days 365 -config ca.cnf -out ca.pem
        printf '%s\n' 'basicConstraints = critical,CA:FALSE' \
            'keyUsage = critical,digitalSignature,keyEncipherment' 'extendedKeyUsage = serverAuth' \
            "subjectAltName = IP:$addr,IP:127.0.0.1,DNS:localhost" \
            'authorityKeyIdentifier = keyid' >server.ext
        printf '%s\n' 'basicConstraints = critical,CA:FALSE' \
            'keyUsage = critical,digitalSignature,keyEncipherment' 'extendedKeyUsage = clientAuth' \
            'authorityKeyIdentifier = keyid' >client.ext
        for who in server client; do
            openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$who-key.pem"
            openssl req -new -key "$who-key.pem" -subj "/CN=pgha-lab engine2 $who" -out "$who.csr"
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca-key.pem \
                -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 -extfile "$who.ext" \
                -out "$who-cert.pem" 2>/dev/null
        done
    )
    install -m 0600 "$work/ca-key.pem" "$tls/ca-key.pem"
    install -m 0644 "$work/ca.pem" "$tls/ca.pem"
    install -m 0644 "$work/server-cert.pem" "$tls/server-cert.pem"
    install -m 0600 "$work/server-key.pem" "$tls/server-key.pem"
    install -m 0644 "$work/ca.pem" "$certs/ca.pem"
    install -m 0644 "$work/client-cert.pem" "$certs/cert.pem"
    install -m 0600 "$work/client-key.pem" "$certs/key.pem"
    rm -rf "$work"
}

make_bridge() {
    if ip link show "$bridge" >/dev/null 2>&1; then
        [ "$(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null)" = "$mark" ] ||
            die "a $bridge interface exists that this script did not make; not touching it"
    else
        say "making bridge $bridge ($bridge_cidr)"
        ip link add "$bridge" type bridge
        ip link set "$bridge" alias "$mark"
    fi
    ip -o addr show dev "$bridge" | grep -qF " $bridge_cidr " || ip addr add "$bridge_cidr" dev "$bridge"
    ip link set "$bridge" mtu "$mtu" up
}

write_daemon_config() {
    mkdir -p "$exec_root"
    cat >"$config" <<EOF
{
  "data-root": "$data_root",
  "exec-root": "$exec_root",
  "pidfile": "$daemon_pidfile",
  "hosts": ["unix://$sock", "tcp://$addr:$tcp_port"],
  "tls": true,
  "tlsverify": true,
  "tlscacert": "$tls/ca.pem",
  "tlscert": "$tls/server-cert.pem",
  "tlskey": "$tls/server-key.pem",
  "storage-driver": "$driver",
  "bridge": "$bridge",
  "ip": "$addr",
  "mtu": $mtu,
  "iptables": false,
  "ip-masq": false,
  "ip-forward": false,
  "containerd-namespace": "$mark",
  "containerd-plugins-namespace": "$mark-plugins",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
EOF
}

start_dockerd() {
    local pid i
    say "starting dockerd (log $log)"
    # setsid: not in the caller's process group; no inherited stdout (a caller reading ours to the
    # end would wait for dockerd) and not our lock's fd 9.
    setsid env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
        dockerd --config-file "$config" </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$pidfile"
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited; the end of its log:"
            tail -n 25 "$log" >&2
            die "dockerd did not start; scripts/second-engine.sh stop removes what was made"
        fi
        if dk2_unix version >/dev/null 2>&1 && dk2_tcp version >/dev/null 2>&1; then
            # dockerd's own pidfile has its pid, whether or not setsid forked
            live_pid "$daemon_pidfile" dockerd >"$pidfile" || echo "$pid" >"$pidfile"
            return 0
        fi
        sleep 0.2
    done
    say "dockerd (pid $pid) does not answer on unix://$sock and tcp://$addr:$tcp_port after 30s; the end of its log:"
    tail -n 25 "$log" >&2
    die "scripts/second-engine.sh stop stops it and removes what was made"
}

install_sshd() {
    command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "sshd is missing; install openssh-server"
    say "installing openssh-server with apt-get (its service is not started)"
    local policy=/usr/sbin/policy-rc.d made=""
    if [ ! -e "$policy" ]; then # keeps the package's scripts from starting the system's sshd
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; } \
        >/dev/null || rc=$?
    [ -z "$made" ] || rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get install openssh-server failed"
}

start_sshd() {
    local sshd pid i
    install_sshd
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    mkdir -p "$ssh_dir" "$ssh_bin"
    chmod 700 "$ssh_dir"
    [ -s "$ssh_dir/host_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "$mark host" -f "$ssh_dir/host_ed25519"
    [ -s "$ssh_dir/id_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "$mark client" -f "$ssh_dir/id_ed25519"
    install -m 0600 "$ssh_dir/id_ed25519.pub" "$ssh_dir/authorized_keys"
    echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$ssh_dir/host_ed25519.pub")" >"$ssh_dir/known_hosts"
    cat >"$sshd_config" <<EOF
# sshd of the second engine (scripts/second-engine.sh); not the system's sshd
ListenAddress 127.0.0.1:$ssh_port
HostKey $ssh_dir/host_ed25519
PidFile $sshd_pidfile
AuthorizedKeysFile $ssh_dir/authorized_keys
# The state dir may be anywhere (e.g. under /tmp, which StrictModes refuses); its keys are 0600.
StrictModes no
PermitRootLogin prohibit-password
AllowUsers root
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
X11Forwarding no
SetEnv DOCKER_HOST=unix://$sock
EOF
    cat >"$ssh_config" <<EOF
# ssh to the second engine's sshd: ssh -F $ssh_config -p $ssh_port root@127.0.0.1 docker ...
Host 127.0.0.1 $mark
    HostName 127.0.0.1
    Port $ssh_port
    User root
    IdentityFile $ssh_dir/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $ssh_dir/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
EOF
    printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$(command -v ssh)" "$ssh_config" >"$ssh_bin/ssh"
    chmod 755 "$ssh_bin/ssh"
    if [ ! -d /run/sshd ]; then # the privilege separation directory sshd needs
        mkdir -m 0755 /run/sshd
        : >"$dir/made-run-sshd"
    fi
    "$sshd" -t -f "$sshd_config"
    say "starting sshd on 127.0.0.1:$ssh_port"
    setsid "$sshd" -D -f "$sshd_config" -E "$ssh_dir/sshd.log" </dev/null >/dev/null 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$sshd_pidfile.launched"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 10 "$ssh_dir/sshd.log" >&2; die "sshd exited"; }
        if ssh2 true 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    tail -n 10 "$ssh_dir/sshd.log" >&2
    die "cannot log in to sshd on 127.0.0.1:$ssh_port"
}

start() {
    local t0 pid root docker0_before=""
    t0=$(date +%s%N)
    [ "$(id -u)" = 0 ] || die "needs root"
    guard_paths
    take_lock
    claim_dir "$dir"

    if pid=$(dockerd_pid) && dk2_unix version >/dev/null 2>&1 && dk2_tcp version >/dev/null 2>&1 &&
        sshd_pid >/dev/null && ssh2 true 2>/dev/null; then
        say "already running (dockerd pid $pid)"
        print_env
        return 0
    fi

    ip -o route get "$addr" | grep -q "^local $addr dev lo" ||
        die "$addr is not a local address on lo here (ip route get $addr: $(ip -o route get "$addr"))"
    ip link show docker0 >/dev/null 2>&1 && docker0_before=1
    driver=${PGHA_LAB_ENGINE2_STORAGE_DRIVER:-$(dk info --format '{{.Driver}}' 2>/dev/null || true)}
    [ -n "$driver" ] || die "cannot read the first engine's storage driver (docker info); set PGHA_LAB_ENGINE2_STORAGE_DRIVER"
    mtu=$(dk network inspect bridge --format '{{index .Options "com.docker.network.driver.mtu"}}' 2>/dev/null || true)
    [[ $mtu =~ ^[0-9]+$ ]] || mtu=1500

    if ! dockerd_pid >/dev/null; then
        port_taken "$tcp_port" && die "TCP port $tcp_port is in use: $(ss -Htlnp "sport = :$tcp_port")"
        claim_dir "$data_root"
        make_certs
        make_bridge
        iptables -C "${rule[@]}" 2>/dev/null || ipt -I "${rule[@]}"
        write_daemon_config
        start_dockerd
    else
        iptables -C "${rule[@]}" 2>/dev/null || ipt -I "${rule[@]}"
        { dk2_unix version >/dev/null 2>&1 && dk2_tcp version >/dev/null 2>&1; } ||
            die "dockerd (pid $(dockerd_pid)) runs but does not answer; scripts/second-engine.sh stop, then start"
    fi
    if ! sshd_pid >/dev/null; then
        port_taken "$ssh_port" && die "TCP port $ssh_port is in use: $(ss -Htlnp "sport = :$ssh_port")"
        start_sshd
    fi
    root=$(ssh2 docker info --format '{{.DockerRootDir}}' 2>&1) || die "docker over ssh failed: $root"
    [ "$root" = "$data_root" ] || die "docker over ssh reached the engine with root $root, not $data_root"
    if [ -n "$docker0_before" ] && ! ip link show docker0 >/dev/null 2>&1; then
        die "docker0 is gone since this start began; the first engine needs it back"
    fi
    say "running: dockerd pid $(dockerd_pid), sshd pid $(sshd_pid), in $((($(date +%s%N) - t0) / 1000000)) ms"
    print_env
}

# Pids of the processes running one of the programs named after PATH whose command line holds
# PATH/ (the second engine's containerd and its shims name its exec root; fuse-overlayfs its data
# root): only this engine's, not, say, a shell whose command mentions the path.
pids_naming() {
    local path=$1 f pid exe
    shift
    { grep -alF -- "$path/" /proc/[0-9]*/cmdline 2>/dev/null || true; } | while read -r f; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        if [[ " $* " == *" ${exe##*/} "* ]]; then echo "$pid"; fi
    done
    return 0
}

stop() {
    local pid pids id cg procs sockets m i
    [ "$(id -u)" = 0 ] || die "needs root"
    guard_paths
    take_lock

    if pid=$(dockerd_pid); then
        say "stopping dockerd (pid $pid)"
        end_pid "$pid" 30 dockerd
    fi
    if pid=$(sshd_pid) || pid=$(live_pid "$sshd_pidfile.launched" "$sshd_config"); then
        say "stopping sshd (pid $pid)"
        end_pid "$pid" 10 sshd
    fi

    # What a dockerd that did not stop cleanly (kill -9) left: its containers' processes (in the
    # cgroups of the containers in its data root), its containerd and their shims.
    if [ -e "$data_root/.$mark" ] && [ -d "$data_root/containers" ]; then
        for id in "$data_root"/containers/*; do
            id=${id##*/}
            [[ $id =~ ^[0-9a-f]{64}$ ]] || continue
            for cg in /sys/fs/cgroup/pids/docker/"$id" /sys/fs/cgroup/unified/docker/"$id" /sys/fs/cgroup/docker/"$id"; do
                [ -r "$cg/cgroup.procs" ] && break
            done
            [ -r "$cg/cgroup.procs" ] || continue
            for ((i = 0; i < 25; i++)); do
                procs=$(cat "$cg/cgroup.procs")
                [ -n "$procs" ] || break
                [ "$i" -gt 0 ] || say "killing what is left of container ${id:0:12}: $(echo "$procs" | wc -l) process(es)"
                # shellcheck disable=SC2086
                kill -KILL $procs 2>/dev/null || true
                sleep 0.2
            done
        done
    fi
    pids=$(pids_naming "$exec_root" containerd containerd-shim-runc-v2 containerd-shim)
    if [ -n "$pids" ]; then
        # The shims' sockets (under /run/containerd/s) stay when they are killed: note them.
        sockets=$(ss -Hxlp 2>/dev/null | awk -v pids=" $(echo "$pids" | tr '\n' ' ') " '
            { for (i = 1; i <= NF; i++) if ($i ~ /^\//) path = $i
              if (match($0, /pid=[0-9]+/)) { p = substr($0, RSTART + 4, RLENGTH - 4)
                  if (index(pids, " " p " ")) print path } }' | grep '^/run/containerd/s/' | sort -u || true)
        for pid in $pids; do
            say "stopping what dockerd left: pid $pid $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | cut -c1-90)"
            end_pid "$pid" 5 process
        done
        for m in $sockets; do rm -f "$m"; done
    fi

    # Mounts left under the data root and the exec root (fuse-overlayfs, netns), deepest first.
    awk -v a="$data_root/" -v b="$exec_root/" \
        'index($5, a) == 1 || index($5, b) == 1 || $5 == substr(a, 1, length(a) - 1) { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r m; do
        say "unmounting $m"
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
    done
    for pid in $(pids_naming "$data_root" fuse-overlayfs); do end_pid "$pid" 5 process; done

    # Empty cgroups of its containers (runc removes them when it can).
    if [ -e "$data_root/.$mark" ] && [ -d "$data_root/containers" ]; then
        for id in "$data_root"/containers/*; do
            id=${id##*/}
            [[ $id =~ ^[0-9a-f]{64}$ ]] || continue
            for cg in /sys/fs/cgroup/*/docker/"$id" /sys/fs/cgroup/docker/"$id"; do
                [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
            done
        done
    fi

    # The bridges of its own networks (br-ID): dockerd leaves them when it stops with networks
    # left (a lab not destroyed, or a kill -9). Their names are in its network store.
    local b store=$data_root/network/files/local-kv.db
    if [ -e "$data_root/.$mark" ] && [ -f "$store" ]; then
        while read -r b; do
            [ -d "/sys/class/net/$b/bridge" ] || continue
            for ((i = 0; i < 25; i++)); do # a dead container's veth goes with its netns, soon
                [ -z "$(ls "/sys/class/net/$b/brif")" ] && break
                sleep 0.2
            done
            if [ -n "$(ls "/sys/class/net/$b/brif")" ]; then
                say "$b (a network of the second engine) still has ports; left alone"
                continue
            fi
            say "removing bridge $b (a network of the second engine)"
            ip link delete "$b" type bridge
        done < <(grep -aoE '"BridgeName":"br-[0-9a-f]{12}"' "$store" | cut -d'"' -f4 | sort -u)
    fi

    if [ -e "$data_root/.$mark" ]; then
        say "removing $data_root"
        rm -rf --one-file-system "$data_root"
    elif [ -e "$data_root" ]; then
        say "$data_root was not made by this script; left alone"
    fi
    if ip link show "$bridge" >/dev/null 2>&1; then
        if [ "$(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null)" = "$mark" ]; then
            say "removing bridge $bridge"
            ip link delete "$bridge" type bridge
        else
            say "$bridge was not made by this script; left alone"
        fi
    fi
    while iptables -C "${rule[@]}" 2>/dev/null; do
        say "removing the iptables rule ${rule[*]}"
        ipt -D "${rule[@]}"
    done
    if [ -e "$dir/made-run-sshd" ]; then
        rmdir /run/sshd 2>/dev/null || true
    fi
    if [ -d "$dir" ]; then
        rm -rf --one-file-system "$dir"
    fi
    exec 9>&-
    say "stopped"
}

status() {
    local pid spid rc=0
    if pid=$(dockerd_pid); then
        echo "dockerd runs (pid $pid), data root $data_root, publishes on $addr by default"
        if dk2_unix version >/dev/null 2>&1; then echo "  unix://$sock answers"; else echo "  unix://$sock does not answer"; rc=1; fi
        if dk2_tcp version >/dev/null 2>&1; then echo "  tcp://$addr:$tcp_port answers (TLS, client cert $certs)"; else echo "  tcp://$addr:$tcp_port does not answer"; rc=1; fi
    else
        echo "dockerd of the second engine does not run"
        rc=1
    fi
    if spid=$(sshd_pid); then
        echo "  ssh://root@127.0.0.1:$ssh_port: sshd runs (pid $spid); ssh -F $ssh_config"
    elif [ -n "${pid:-}" ]; then
        echo "  ssh://root@127.0.0.1:$ssh_port: sshd does not run"
        rc=1
    fi
    return "$rc"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
