#!/bin/bash
# The course's /etcdSetup.sh: writes this node's etcd configuration from NODELIST and the
# etcdN aliases in /etc/hosts, writes /pgha/config/patroniVars for /patroniSetup.sh, and prints
# the ENDPOINTS line to copy. `lab` runs this same script to bootstrap a lab, so a lab built by
# hand and one made by `lab create` hold the same files. In a lab made with `lab create --tls`,
# the members talk https to each other and to their clients, with the node's certificate from
# /pgha/certs and client certificates required on both ports, as guide 002 sets etcd up.
#
#   /etcdSetup.sh [-y] [-e]
#     -y  YAML for `etcd --config-file` (/pgha/config/etcd.yaml); without it the service
#         manager's ETCD_* format (/pgha/config/etcd.conf)
#     -e  member names etcd1, etcd2, ... from the aliases instead of the host names
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: /etcdSetup.sh [-y] [-e]
  -y  write /pgha/config/etcd.yaml, the YAML form `etcd --config-file` reads (the course uses it)
  -e  name the members etcd1, etcd2, ... after their /etc/hosts aliases instead of the host names
NODELIST must hold the lab's nodes ("pgha1:192.168.50.10 pgha2:192.168.50.11 ..."); from a root
shell, keep it with: sudo -E -u postgres /bin/bash -l
EOF
    exit 1
}

yaml=0
aliases=0
while getopts ye option; do
    case $option in
        y) yaml=1 ;;
        e) aliases=1 ;;
        *) usage ;;
    esac
done

config_dir=/pgha/config
vars_file=$config_dir/patroniVars
hosts_file=/etc/hosts
token=pgha-token
data_dir=/pgha/data/etcd
settings=/etc/pgha-lab.json
certs=/pgha/certs

if [ ! -d "$config_dir" ]; then
    echo "ERROR: $config_dir does not exist; as root: mkdir -p /pgha/{config,certs,data/{etcd,postgres,pgbackrest}} && chown -R postgres:postgres /pgha" >&2
    exit 1
fi
if [ -z "${NODELIST:-}" ]; then
    cat >&2 <<'EOF'
ERROR: the environment variable NODELIST is unset or empty.
If you are user postgres, you probably ran "su - postgres" from the root shell: exit it and run
"sudo -E -u postgres /bin/bash -l" instead, which keeps the environment. Or export NODELIST here.
EOF
    exit 1
fi

this=$(hostname)
this_ip=
for pair in $NODELIST; do
    if [ "${pair%%:*}" = "$this" ]; then this_ip=${pair#*:}; fi
done
if [ -z "$this_ip" ]; then
    echo "ERROR: this node ($this) is not in NODELIST ($NODELIST)" >&2
    exit 1
fi

# TLS when the lab was made with --tls; its certificates must be in place then.
tls=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("tls", False))' "$settings" 2>/dev/null || echo False)
scheme=http
if [ "$tls" = True ]; then
    scheme=https
    for file in "$certs/ca.crt" "$certs/$this.crt" "$certs/$this.key"; do
        if [ ! -s "$file" ]; then
            echo "ERROR: this lab has TLS (lab create --tls), but $file is missing; on the host, \`lab bootstrap --stage access\` puts the lab's certificates in place" >&2
            exit 1
        fi
    done
fi

# The etcdN alias /etc/hosts gives an address, if any.
etcd_alias_of() {
    awk -v ip="$1" '$1 == ip { for (i = 2; i <= NF; i++) if ($i ~ /^etcd[0-9]+$/) { print $i; exit } }' "$hosts_file"
}

# The etcd members, as "name ip" lines: every node of NODELIST that carries an etcdN alias (all of
# them when none does), named after the host or, with -e, after the alias.
members=()
any_alias=0
for pair in $NODELIST; do
    if [ -n "$(etcd_alias_of "${pair#*:}")" ]; then any_alias=1; fi
done
for pair in $NODELIST; do
    host=${pair%%:*} ip=${pair#*:}
    alias=$(etcd_alias_of "$ip")
    if [ "$any_alias" = 1 ] && [ -z "$alias" ]; then continue; fi
    if [ "$aliases" = 1 ]; then
        if [ -z "$alias" ]; then
            echo "ERROR: no etcd alias in $hosts_file for $host ($ip); -e needs lines like \"$ip $host etcd1\"" >&2
            exit 1
        fi
        members+=("$alias $ip")
    else
        members+=("$host $ip")
    fi
done

name=
initial_cluster=
etcd_nodes=
endpoints=
for member in "${members[@]}"; do
    read -r member_name member_ip <<<"$member"
    if [ "$member_ip" = "$this_ip" ]; then name=$member_name; fi
    initial_cluster+="${initial_cluster:+,}$member_name=$scheme://$member_ip:2380"
    etcd_nodes+="${etcd_nodes:+,}$member_name:2379"
    endpoints+="${endpoints:+,}$member_name:2379"
done

if [ -n "$name" ]; then
    if [ "$yaml" = 1 ]; then
        config=$config_dir/etcd.yaml
        cat >"$config" <<EOF
name: $name
initial-cluster: "$initial_cluster"
initial-cluster-token: $token
data-dir: $data_dir
initial-cluster-state: new
initial-advertise-peer-urls: "$scheme://$this_ip:2380"
listen-peer-urls: "$scheme://$this_ip:2380"
listen-client-urls: "$scheme://$this_ip:2379,$scheme://localhost:2379"
advertise-client-urls: "$scheme://$this_ip:2379"
EOF
        if [ "$tls" = True ]; then
            for side in client peer; do
                cat >>"$config" <<EOF
$side-transport-security:
  cert-file: $certs/$this.crt
  key-file: $certs/$this.key
  client-cert-auth: true
  trusted-ca-file: $certs/ca.crt
EOF
            done
        fi
    else
        config=$config_dir/etcd.conf
        cat >"$config" <<EOF
ETCD_NAME=$name
ETCD_INITIAL_CLUSTER="$initial_cluster"
ETCD_INITIAL_CLUSTER_TOKEN="$token"
ETCD_INITIAL_CLUSTER_STATE="new"
ETCD_INITIAL_ADVERTISE_PEER_URLS="$scheme://$this_ip:2380"
ETCD_DATA_DIR="$data_dir"
ETCD_LISTEN_PEER_URLS="$scheme://$this_ip:2380"
ETCD_LISTEN_CLIENT_URLS="$scheme://$this_ip:2379,$scheme://localhost:2379"
ETCD_ADVERTISE_CLIENT_URLS="$scheme://$this_ip:2379"
EOF
        if [ "$tls" = True ]; then
            for side in "" PEER_; do
                cat >>"$config" <<EOF
ETCD_${side}CERT_FILE="$certs/$this.crt"
ETCD_${side}KEY_FILE="$certs/$this.key"
ETCD_${side}CLIENT_CERT_AUTH="true"
ETCD_${side}TRUSTED_CA_FILE="$certs/ca.crt"
EOF
            done
        fi
    fi
    cat "$config"
    if [ "$yaml" = 0 ]; then
        echo
        echo "note: this is the service manager's format, written to $config; \`etcd --config-file\` needs the YAML one: /etcdSetup.sh -y"
    fi
else
    echo "$this is not an etcd member in this lab: no etcd configuration written, only $vars_file"
fi

echo
echo "Add the following environment variable to your profile for easy access to the etcd endpoints"
echo
printf '\texport ENDPOINTS="%s"\n' "$endpoints"
echo
echo "note: the course prints these endpoints with port 2380, etcd's peer port. etcd answers etcdctl there too on a lab without TLS, but not on a --tls lab, so they are written with the client port, 2379, here (login shells in this lab already export ENDPOINTS)."
if [ "$tls" = True ]; then
    echo "note: this lab has TLS (lab create --tls): etcd serves https on both ports and requires a client certificate from the lab's CA; login shells export ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY for etcdctl."
fi

cat >"$vars_file" <<EOF
ETCD_NODES="$etcd_nodes"
NODE_NAME="$this"
PATRONI_CFG="$config_dir/patroni.yaml"
DATADIR="${PGDATA:-/pgdata/17/data}"
CFG_DIR="$config_dir"
PG_BIN_DIR="/usr/lib/postgresql/17/bin/"
NAMESPACE="pgha"
SCOPE="pgha_patroni_cluster"
EOF
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$vars_file" ${config:+"$config"}
fi
