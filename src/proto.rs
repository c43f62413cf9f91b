//! The transport protocols a Service port, a NAT flow and a reply rule can
//! name: one type for the manifest model, the NAT core and the netlink layer.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    /// A Service or container port's `protocol` (absent means TCP, as the
    /// API server defaults it); `None` for one lab does not carry (SCTP).
    pub fn from_k8s(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    /// As iproute2 and nftables write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_kubernetes_spelling() {
        for p in [Proto::Tcp, Proto::Udp] {
            assert_eq!(Proto::from_number(p.number()), Some(p));
        }
        assert_eq!(Proto::from_number(1), None);
        assert_eq!(Proto::from_k8s(None), Some(Proto::Tcp));
        assert_eq!(Proto::from_k8s(Some("UDP")), Some(Proto::Udp));
        assert_eq!(Proto::from_k8s(Some("SCTP")), None);
        assert_eq!(Proto::Udp.to_string(), "udp");
    }
}
