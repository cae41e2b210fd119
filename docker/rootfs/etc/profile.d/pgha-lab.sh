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
# The client endpoints of every etcd member. The course writes ENDPOINTS with port 2380, which is
# etcd's peer port; etcdctl talks to the client port, 2379.
if [ -n "${NODELIST:-}" ]; then
    ENDPOINTS=
    for node in $NODELIST; do
        ENDPOINTS="${ENDPOINTS:+$ENDPOINTS,}${node%%:*}:2379"
    done
    export ENDPOINTS
fi
