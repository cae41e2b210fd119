//! The host's own routes (Linux /proc/net/route), read as subnets a new lab network must not
//! overlap: a lab on the subnet of the trainee's home network would cut them off from it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::ipam::TakenSubnet;

/// Parses /proc/net/route: every route but the default one, as a taken subnet.
pub fn parse(table: &str) -> Vec<TakenSubnet> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let iface = fields.first()?;
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The kernel prints the addresses' bytes, in network order, as a native integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            if prefix == 0 {
                return None;
            }
            Some(TakenSubnet {
                net: Ipv4Net::new(dest, prefix).ok()?.trunc(),
                holder: format!("host route via {iface}"),
            })
        })
        .collect()
}

/// The host's routes, or none where there is no /proc/net/route (not Linux).
pub fn read() -> Vec<TakenSubnet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_but_the_default_are_taken() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse(table);
        if cfg!(target_endian = "little") {
            let nets: Vec<String> = routes.iter().map(|r| r.net.to_string()).collect();
            assert_eq!(nets, ["192.168.2.0/24", "172.17.0.0/16"]);
            assert_eq!(routes[0].holder, "host route via eth0");
        }
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse("header\nnot a route\n\n").is_empty());
    }
}
