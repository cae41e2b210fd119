//! What the lab's own settings predict a client sees during a drill: the window in which the
//! write outage should fall, worked out from Patroni's ttl, loop_wait and retry_timeout and
//! HAProxy's check intervals, and one sentence comparing it with what was observed.

use serde::Serialize;

use crate::fault::Fault;
use crate::render::{HAPROXY_FALL, HAPROXY_INTER, HAPROXY_RISE};

/// The settings a drill's pace follows.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    /// Clients go through HAProxy (its checks add their own delay).
    pub haproxy: bool,
    /// Commits wait for a synchronous standby.
    pub sync: bool,
    /// How long the drill keeps its fault in place where it restores it itself (etcd's
    /// majority, HAProxy).
    pub hold: u64,
}

/// The predicted write outage, in seconds, and how it is made up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub low: f64,
    pub high: f64,
    pub why: String,
}

/// HAProxy marks the new primary up after `rise` good checks, the first of which may come up to
/// one interval late.
fn proxy_up() -> u64 {
    (HAPROXY_RISE + 1) * HAPROXY_INTER
}

fn proxy_part(t: &Timers) -> String {
    if t.haproxy {
        format!(
            "; HAProxy then marks the new primary up after rise {HAPROXY_RISE} checks every \
             {HAPROXY_INTER} s (up to {} s more)",
            proxy_up()
        )
    } else {
        String::new()
    }
}

pub fn window(scenario: Fault, t: &Timers) -> Window {
    let proxy = if t.haproxy { proxy_up() } else { 0 };
    let (low, high, why) = match scenario {
        Fault::KillPrimary | Fault::PartitionPrimary => (
            t.ttl.saturating_sub(t.loop_wait),
            t.ttl + t.loop_wait + proxy,
            format!(
                "the old primary's leader key lapses ttl ({} s) after its last renewal, which \
                 came at most loop_wait ({} s) before the fault, and a replica promotes within a \
                 loop{}",
                t.ttl,
                t.loop_wait,
                proxy_part(t)
            ),
        ),
        Fault::Switchover | Fault::Failover => (
            if t.haproxy {
                (HAPROXY_RISE - 1) * HAPROXY_INTER
            } else {
                0
            },
            t.loop_wait + proxy + if t.haproxy { HAPROXY_INTER } else { 0 },
            format!(
                "Patroni demotes the primary and promotes the candidate at once, within a \
                 loop_wait ({} s){}{}",
                t.loop_wait,
                proxy_part(t),
                if t.haproxy {
                    format!(
                        ", while the old one is marked down only after fall {HAPROXY_FALL} \
                         failed checks"
                    )
                } else {
                    String::new()
                }
            ),
        ),
        Fault::KillReplica if t.sync => (
            0,
            t.ttl + t.loop_wait,
            format!(
                "in synchronous mode a commit waits for the synchronous standby, so writes hang \
                 until Patroni names another one: once the lost standby's member key lapses \
                 (ttl, {} s) or its connection is dropped, within a loop ({} s)",
                t.ttl, t.loop_wait
            ),
        ),
        Fault::KillReplica => (
            0,
            1,
            "an asynchronous primary does not wait for its replicas: writes go on".into(),
        ),
        Fault::EtcdMajority => (
            t.hold.saturating_sub(t.loop_wait + t.retry_timeout),
            t.hold.saturating_sub(t.retry_timeout) + t.loop_wait + proxy,
            format!(
                "without etcd's quorum the primary cannot renew its leader key and demotes \
                 itself after retry_timeout ({} s), at most a loop ({} s) after the fault; \
                 writes come back when the quorum returns ({} s after the fault) and a leader \
                 is elected within a loop{}",
                t.retry_timeout,
                t.loop_wait,
                t.hold,
                proxy_part(t)
            ),
        ),
        Fault::KillHaproxy => (
            t.hold,
            t.hold + 2 + proxy,
            format!(
                "clients have no entry while HAProxy is down ({} s); once it starts again, its \
                 checks must find the primary{}",
                t.hold,
                proxy_part(t)
            ),
        ),
    };
    Window {
        low: low as f64,
        high: high as f64,
        why,
    }
}

/// One sentence: the observed outage against the window, and why they differ.
pub fn verdict(observed: Option<f64>, w: &Window) -> String {
    let Some(seen) = observed else {
        return format!(
            "writes did not come back while the drill watched; predicted {}: {}",
            span(w),
            w.why
        );
    };
    let place = if seen < w.low {
        "shorter than"
    } else if seen > w.high {
        "longer than"
    } else {
        "inside"
    };
    let note = if seen > w.high {
        " (something waited beyond these settings: the Patroni log of the new primary says what)"
    } else if seen < w.low {
        " (the fault came just before a renewal was due, or the workload's pace hid part of it)"
    } else {
        ""
    };
    format!(
        "observed {seen:.1} s, {place} the predicted {}: {}{note}",
        span(w),
        w.why
    )
}

fn span(w: &Window) -> String {
    format!("{:.0}-{:.0} s", w.low, w.high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn course(haproxy: bool) -> Timers {
        Timers {
            ttl: 30,
            loop_wait: 10,
            retry_timeout: 10,
            haproxy,
            sync: false,
            hold: 30,
        }
    }

    #[test]
    fn losing_the_primary_waits_for_its_leader_key() {
        let w = window(Fault::KillPrimary, &course(false));
        assert_eq!((w.low, w.high), (20.0, 40.0));
        let w = window(Fault::KillPrimary, &course(true));
        assert_eq!((w.low, w.high), (20.0, 49.0));
        assert!(w.why.contains("rise 2 checks every 3 s"), "{}", w.why);
    }

    #[test]
    fn a_replica_s_loss_costs_writes_only_in_sync_mode() {
        let w = window(Fault::KillReplica, &course(false));
        assert_eq!((w.low, w.high), (0.0, 1.0));
        let sync = Timers {
            sync: true,
            ..course(false)
        };
        assert_eq!(window(Fault::KillReplica, &sync).high, 40.0);
    }

    #[test]
    fn etcd_s_majority_follows_the_hold() {
        let w = window(Fault::EtcdMajority, &course(false));
        assert_eq!((w.low, w.high), (10.0, 30.0));
    }

    #[test]
    fn the_verdict_places_the_observation() {
        let w = window(Fault::KillPrimary, &course(false));
        assert!(
            verdict(Some(27.0), &w).starts_with("observed 27.0 s, inside the predicted 20-40 s")
        );
        assert!(verdict(Some(55.0), &w).contains("longer than"));
        assert!(verdict(Some(3.0), &w).contains("shorter than"));
        assert!(verdict(None, &w).starts_with("writes did not come back"));
    }
}
