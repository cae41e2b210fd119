#!/bin/bash
# The course's /patroniSetup.sh: reads /pgha/config/patroniVars (written by /etcdSetup.sh) and
# writes this node's /pgha/config/patroni.yaml as the course shows it. The passwords and their
# hashing come from the lab's settings (`lab create --password`, `--md5`). In a lab made with
# `lab create --tls`, Patroni talks https to etcd with the node's certificate, its REST API
# serves https and requires authentication for changes, and PostgreSQL takes remote
# connections, replication included, over TLS only. `lab` runs this same script to bootstrap a
# lab, so a lab built by hand and one made by `lab create` match.
set -euo pipefail

vars_file=/pgha/config/patroniVars
settings=/etc/pgha-lab.json

if [ -f "$vars_file" ]; then
    # shellcheck source=/dev/null
    source "$vars_file"
    echo "Configuration loaded successfully from $vars_file."
else
    echo "Error: Configuration file $vars_file not found. Did you run /etcdSetup.sh?" >&2
    exit 1
fi

# A YAML double-quoted scalar of one of the lab's settings (JSON strings are valid YAML).
setting() {
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' \
        "$settings" "$1"
}
if ! superuser_password=$(setting password 2>/dev/null); then
    echo "Error: cannot read the lab's password from $settings." >&2
    exit 1
fi
case $(setting auth) in
    '"md5"') password_encryption=md5 ;;
    *) password_encryption=scram-sha-256 ;;
esac

# The TLS parts of the file, empty in a plain lab; remote connections are `host` lines there
# and `hostssl` ones here.
rest_tls='' etcd_tls='' pg_tls='' client_tls='' remote=host
if [ "$(setting tls 2>/dev/null)" = true ]; then
    certs=/pgha/certs
    for file in "$certs/ca.crt" "$certs/$NODE_NAME.crt" "$certs/$NODE_NAME.key"; do
        if [ ! -s "$file" ]; then
            echo "Error: this lab has TLS (lab create --tls), but $file is missing; on the host, \`lab bootstrap --stage access\` puts the lab's certificates in place." >&2
            exit 1
        fi
    done
    remote=hostssl
    rest_tls="
    certfile: $certs/$NODE_NAME.crt
    keyfile: $certs/$NODE_NAME.key
    cafile: $certs/ca.crt
    authentication:
        username: patroni
        password: ${superuser_password}"
    etcd_tls="
    protocol: https
    cacert: $certs/ca.crt
    cert: $certs/$NODE_NAME.crt
    key: $certs/$NODE_NAME.key"
    client_tls="
            sslmode: verify-full
            sslrootcert: $certs/ca.crt"
    pg_tls="
        ssl: 'on'
        ssl_cert_file: $certs/$NODE_NAME.crt
        ssl_key_file: $certs/$NODE_NAME.key
        ssl_ca_file: $certs/ca.crt"
fi

umask 077
cat >"$PATRONI_CFG" <<EOF
namespace: ${NAMESPACE}
scope: ${SCOPE}
name: ${NODE_NAME}

log:
  dir: /var/log/patroni
  filename: patroni.log
  level: INFO
  file_size: 26214400
  file_num: 4

restapi:
    listen: 0.0.0.0:8008
    connect_address: ${NODE_NAME}:8008${rest_tls}

etcd3:
    hosts: ${ETCD_NODES}${etcd_tls}

bootstrap:
    dcs:
        ttl: 30
        loop_wait: 10
        retry_timeout: 10
        maximum_lag_on_failover: 1048576
        postgresql:
            use_pg_rewind: true
            use_slots: true
            parameters:
                wal_level: logical
                hot_standby: on
                wal_keep_size: 4096
                max_wal_senders: 10
                max_replication_slots: 10
                wal_log_hints: on
                archive_mode: on
                archive_command: /bin/true
                archive_timeout: 600s
                logging_collector: 'on'
                log_line_prefix: '%m [%r] [%p]: [%l-1] user=%u,db=%d,host=%h '
                log_filename: 'postgresql-%a.log'
                log_lock_waits: 'on'
                log_min_duration_statement: 500
                max_wal_size: 1GB
                password_encryption: ${password_encryption}

            # Patroni 4 reads pg_hba here, in the dynamic configuration (edit it with
            # patronictl edit-config); directly under bootstrap it is ignored.
            pg_hba: # Add the following lines to pg_hba.conf after running 'initdb'
                - local all all trust
                - host all postgres 127.0.0.1/32 trust
                - ${remote} all postgres 0.0.0.0/0 md5
                - host replication replicator 127.0.0.1/32 trust
                - ${remote} replication replicator 0.0.0.0/0 md5

            #recovery_conf:
                #recovery_target_timeline: latest
                #restore_command: pgbackrest --config=${CFG_DIR}/pgbackrest.conf --stanza= archive-get %f "%p"

    # some desired options for 'initdb'
    initdb:
        - encoding: UTF8
        - data-checksums

    post_bootstrap: ${CFG_DIR}/createRoles.sh

    # Users are now created in post bootstrap section

postgresql:
    cluster_name: ${SCOPE}
    listen: 0.0.0.0:5432
    connect_address: ${NODE_NAME}:5432
    data_dir: ${DATADIR}
    bin_dir: ${PG_BIN_DIR}
    pgpass: ${CFG_DIR}/pgpass

    authentication:
        replication:
            username: replicator
            password: replicator${client_tls}
        superuser:
            username: postgres
            password: ${superuser_password}${client_tls}

    parameters:
        unix_socket_directories: /var/run/postgresql/${pg_tls}

    create_replica_methods:
        - pgbackrest
        - basebackup

    #pgbackrest:
        #command: pgbackrest --config=${CFG_DIR}/pgbackrest.conf --stanza= --delta restore
        #keep_data: True
        #no_params: True

    #recovery_conf:
        #recovery_target_timeline: latest
        #restore_command: pgbackrest --config=${CFG_DIR}/pgbackrest.conf --stanza= archive-get %f \"%p\"

    basebackup:
        checkpoint: 'fast'
        wal-method: 'stream'

tags:
    nofailover: false
    noloadbalance: false
    clonefrom: false
    nosync: false
EOF
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PATRONI_CFG"
fi
echo "note: pg_hba is written under bootstrap.dcs.postgresql, where Patroni 4 reads it; the course's file puts it directly under bootstrap, where Patroni 4 ignores it."
if [ "$remote" = hostssl ]; then
    echo "note: this lab has TLS (lab create --tls): Patroni reaches etcd over https with this node's certificate, its REST API serves https and asks changes for the user patroni with the lab's password, and PostgreSQL takes remote connections over TLS only (hostssl)."
fi
