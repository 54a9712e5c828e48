//! The one human-friendly form of a 32-byte public key, used everywhere: CLI, config, logs and
//! addresses such as `quic://127.0.0.1:4433#<key>`.
//!
//! Lowercase RFC 4648 base32 without padding (52 characters): case-insensitive to read back,
//! no characters that need escaping in URIs, JIDs or mail addresses.

use data_encoding::BASE32_NOPAD;

/// Why a key string was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base32.
    #[error("key {0:?} is not base32 (expected 52 characters a-z, 2-7)")]
    Encoding(String),
    /// Wrong number of bytes.
    #[error("key {0:?} is not 32 bytes long")]
    Length(String),
}

/// Encode a key in its human-friendly form.
pub fn encode_key(key: &[u8; 32]) -> String {
    BASE32_NOPAD.encode(key).to_ascii_lowercase()
}

/// Decode a key from its human-friendly form (case-insensitive).
pub fn decode_key(s: &str) -> Result<[u8; 32], KeyError> {
    let s = s.trim();
    // 32 bytes are exactly 52 base32 characters; refusing other lengths first bounds the work.
    if s.len() != 52 {
        return Err(KeyError::Length(s.to_string()));
    }
    let bytes = BASE32_NOPAD
        .decode(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| KeyError::Encoding(s.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::Length(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_case() {
        let key = [7u8; 32];
        let s = encode_key(&key);
        assert_eq!(s.len(), 52);
        assert_eq!(decode_key(&s).unwrap(), key);
        assert_eq!(decode_key(&s.to_uppercase()).unwrap(), key);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(decode_key("abc"), Err(KeyError::Length(_))));
        let bad = "1".repeat(52);
        assert!(matches!(decode_key(&bad), Err(KeyError::Encoding(_))));
    }
}
