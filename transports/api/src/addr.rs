//! Peer addresses: `quic://host:port#key`, `xmpp:user@host`, `mailto:user@host`, `mem:name`.

use std::fmt;
use std::str::FromStr;

use crate::key::{decode_key, encode_key};

/// The kind of a transport address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `quic://host:port#key`
    Quic,
    /// `xmpp:user@host`
    Xmpp,
    /// `mailto:user@host`
    Mail,
    /// `mem:name`, the in-memory transport for tests and the simulator.
    Mem,
}

impl Scheme {
    /// The scheme as written in addresses, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Quic => "quic",
            Scheme::Xmpp => "xmpp",
            Scheme::Mail => "mailto",
            Scheme::Mem => "mem",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// Unknown or missing scheme.
    #[error("address {0:?} has no known scheme (quic://, xmpp:, mailto:, mem:)")]
    Scheme(String),
    /// The part after the scheme is malformed.
    #[error("address {addr:?} is malformed: {why}")]
    Malformed {
        /// The address.
        addr: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A validated peer address. Kept as its canonical string so it can be stored, compared and
/// shown without conversions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    scheme: Scheme,
    text: String,
}

/// Longest address accepted; bounds what a peer or config line can make us hold.
pub const MAX_ADDR_LEN: usize = 512;

impl PeerAddr {
    /// The address's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The canonical text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part after the scheme: `host:port#key`, `user@host` or `name`.
    pub fn rest(&self) -> &str {
        let skip = match self.scheme {
            Scheme::Quic => "quic://".len(),
            Scheme::Xmpp => "xmpp:".len(),
            Scheme::Mail => "mailto:".len(),
            Scheme::Mem => "mem:".len(),
        };
        &self.text[skip..]
    }

    /// For `quic://host:port#key`: `(host:port, key)`.
    pub fn quic_parts(&self) -> Option<(&str, [u8; 32])> {
        if self.scheme != Scheme::Quic {
            return None;
        }
        let (hostport, key) = self.rest().split_once('#')?;
        Some((hostport, decode_key(key).ok()?))
    }

    /// Build a QUIC address from a socket address text and a node key.
    pub fn quic(hostport: &str, key: &[u8; 32]) -> Result<Self, AddrError> {
        format!("quic://{hostport}#{}", encode_key(key)).parse()
    }

    /// Build an in-memory address.
    pub fn mem(name: &str) -> Result<Self, AddrError> {
        format!("mem:{name}").parse()
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn malformed(addr: &str, why: &'static str) -> AddrError {
    AddrError::Malformed {
        addr: addr.to_string(),
        why,
    }
}

/// `user@host` with a non-empty user and host and no whitespace.
fn check_user_host(addr: &str, s: &str) -> Result<(), AddrError> {
    let (user, host) = s
        .split_once('@')
        .ok_or_else(|| malformed(addr, "expected user@host"))?;
    if user.is_empty() || host.is_empty() || host.contains('@') {
        return Err(malformed(addr, "expected user@host"));
    }
    Ok(())
}

impl FromStr for PeerAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_ADDR_LEN {
            return Err(malformed(&s[..64], "longer than 512 bytes"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(malformed(s, "contains whitespace"));
        }
        let (scheme, text) = if let Some(rest) = s.strip_prefix("quic://") {
            let (hostport, key) = rest
                .split_once('#')
                .ok_or_else(|| malformed(s, "expected quic://host:port#key"))?;
            let (host, port) = hostport
                .rsplit_once(':')
                .ok_or_else(|| malformed(s, "expected host:port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(malformed(s, "expected host:port with a numeric port"));
            }
            let key = decode_key(key).map_err(|_| malformed(s, "the part after # is not a key"))?;
            (
                Scheme::Quic,
                format!("quic://{hostport}#{}", encode_key(&key)),
            )
        } else if let Some(rest) = s.strip_prefix("xmpp:") {
            check_user_host(s, rest)?;
            (Scheme::Xmpp, format!("xmpp:{}", rest.to_ascii_lowercase()))
        } else if let Some(rest) = s.strip_prefix("mailto:") {
            check_user_host(s, rest)?;
            (
                Scheme::Mail,
                format!("mailto:{}", rest.to_ascii_lowercase()),
            )
        } else if let Some(rest) = s.strip_prefix("mem:") {
            if rest.is_empty() {
                return Err(malformed(s, "empty name"));
            }
            (Scheme::Mem, s.to_string())
        } else {
            return Err(AddrError::Scheme(s.to_string()));
        };
        Ok(PeerAddr { scheme, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let key = encode_key(&[1; 32]);
        let q: PeerAddr = format!("quic://127.0.0.1:4433#{key}").parse().unwrap();
        assert_eq!(q.scheme(), Scheme::Quic);
        assert_eq!(q.quic_parts().unwrap(), ("127.0.0.1:4433", [1; 32]));
        let x: PeerAddr = "xmpp:Relay@Example.org".parse().unwrap();
        assert_eq!(x.as_str(), "xmpp:relay@example.org");
        assert_eq!(x.rest(), "relay@example.org");
        let m: PeerAddr = "mailto:me@example.org".parse().unwrap();
        assert_eq!(m.scheme(), Scheme::Mail);
        assert_eq!(PeerAddr::mem("a").unwrap().rest(), "a");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "http://x",
            "quic://127.0.0.1#abc",
            "quic://127.0.0.1:99999#abc",
            "xmpp:nouser",
            "mailto:@host",
            "mem:",
            "xmpp:a b@c",
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad} should be refused");
        }
        assert!("x".repeat(1000).parse::<PeerAddr>().is_err());
    }
}
