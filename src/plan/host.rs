//! What the engine's machine holds that a new lab must not collide with: its routes and the
//! TCP ports something listens on. For an engine on this machine they are read here; for one
//! elsewhere, from a short container on that machine's network (`PROBE`), whose /proc/net is
//! that machine's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ipam::TakenSubnet;

/// Run in a container on the engine machine's network: its routes, a separator, then its TCP
/// sockets (IPv4 and IPv6).
pub const PROBE: &str =
    "cat /proc/net/route; echo @@lab-host@@; cat /proc/net/tcp; cat /proc/net/tcp6 2>/dev/null";

/// The machine an engine runs on, as the probe saw it.
#[derive(Debug, Default)]
pub struct HostView {
    pub routes: Vec<TakenSubnet>,
    /// Every (address, port) something listens on over TCP.
    pub listening: Vec<(IpAddr, u16)>,
}

impl HostView {
    /// Reads the probe's output.
    pub fn parse(out: &str) -> HostView {
        let (routes, sockets) = out.split_once("@@lab-host@@").unwrap_or((out, ""));
        HostView {
            routes: super::routes::parse(routes),
            listening: listening(sockets),
        }
    }

    /// Whether a port published on `publish` would collide with a listener: one on the same
    /// address or on every address, or any at all when `publish` is every address.
    pub fn bound(&self, publish: IpAddr, port: u16) -> bool {
        self.listening.iter().any(|(addr, p)| {
            *p == port && (*addr == publish || addr.is_unspecified() || publish.is_unspecified())
        })
    }
}

/// The listening sockets of /proc/net/tcp and tcp6 text ("sl local_address rem_address st
/// ...", st 0A being LISTEN).
fn listening(text: &str) -> Vec<(IpAddr, u16)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some((address(addr)?, port))
        })
        .collect()
}

/// A /proc/net address: the kernel prints each 32-bit word of it as a native integer.
fn address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            // A v4-mapped listener (::ffff:a.b.c.d) holds that v4 address.
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Seen on this machine (little-endian): docker-proxy on 127.0.0.1:6432 and 0.0.0.0:2222,
    // sshd on [::]:22, an established connection that is not a listener.
    const OUT: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
@@lab-host@@\n\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1920 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0100007F:1920 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0 0 0\n";

    #[test]
    fn the_probe_gives_routes_and_listeners() {
        let view = HostView::parse(OUT);
        assert_eq!(view.routes.len(), 1);
        assert_eq!(view.routes[0].net.to_string(), "172.17.0.0/16");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            view.listening,
            vec![
                (ip("127.0.0.1"), 6432),
                (ip("0.0.0.0"), 2222),
                (ip("::"), 22)
            ]
        );
        assert!(view.bound(ip("127.0.0.1"), 6432));
        assert!(!view.bound(ip("127.0.0.2"), 6432));
        assert!(view.bound(ip("0.0.0.0"), 6432));
        // Every address is taken on 2222 and 22 (sshd on ::).
        assert!(view.bound(ip("127.0.0.2"), 2222));
        assert!(view.bound(ip("127.0.0.2"), 22));
        assert!(!view.bound(ip("127.0.0.2"), 6433));
    }
}
