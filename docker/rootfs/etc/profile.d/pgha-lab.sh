# Login environment for the training material's commands: psql, patronictl, etcdctl, pgbackrest.
case ":$PATH:" in
    *:/usr/lib/postgresql/17/bin:*) ;;
    *) PATH=/usr/lib/postgresql/17/bin:$PATH ;;
esac
export PATH
export PGDATA=/pgdata/17/data
# Lets `patronictl list` work without -c once Patroni is configured.
if [ -r /pgha/config/patroni.yaml ]; then
    export PATRONICTL_CONFIG_FILE=/pgha/config/patroni.yaml
fi
export ETCDCTL_API=3
# The client endpoints of every etcd member. The course writes ENDPOINTS with port 2380, etcd's
# peer port, where etcd answers etcdctl too on a plain lab but not on a --tls lab; the client
# port, 2379, works on both. The members are the nodes of NODELIST
# with an etcdN alias in /etc/hosts (every node, when none has one), as /etcdSetup.sh takes them:
# in some layouts the PostgreSQL nodes or HAProxy run no etcd.
if [ -n "${NODELIST:-}" ]; then
    members=" $(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^etcd[0-9]+$/) print $1 }' /etc/hosts 2>/dev/null | tr '\n' ' ')"
    ENDPOINTS=
    for node in $NODELIST; do
        case "$members" in
            " " | *" ${node#*:} "*) ENDPOINTS="${ENDPOINTS:+$ENDPOINTS,}${node%%:*}:2379" ;;
        esac
    done
    unset members
    export ENDPOINTS
fi
# In a lab made with `lab create --tls`, the course's commands reach etcd, Patroni's REST API and
# PostgreSQL over TLS without extra flags: etcdctl presents this node's certificate (etcd requires
# one), and psql and curl verify the servers against the lab's CA.
pgha_cert=/pgha/certs/$(hostname 2>/dev/null).crt
if [ -r /pgha/certs/ca.crt ] && [ -s "$pgha_cert" ]; then
    export ETCDCTL_CACERT=/pgha/certs/ca.crt
    export ETCDCTL_CERT=$pgha_cert
    export ETCDCTL_KEY=${pgha_cert%.crt}.key
    export PGSSLMODE=verify-full
    export PGSSLROOTCERT=/pgha/certs/ca.crt
    export CURL_CA_BUNDLE=/pgha/certs/ca.crt
fi
unset pgha_cert
