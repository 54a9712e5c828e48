//! TLS identity and peer verification: each node presents a self-signed certificate whose key
//! IS its ed25519 node key, and both sides accept exactly one Ed25519 certificate, check the
//! TLS 1.3 handshake signature with it, and pin it to a node key.
//!
//! The dialler learns which key to expect from the server name it sends (the key in its
//! `encode_key` form plus [`SNI_SUFFIX`]), so one client configuration serves every peer and the
//! verifier cannot be handed a key that differs from the one rustls checks against.

use std::sync::Arc;

use lakitu_transport::{decode_key, encode_key};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The ALPN protocol both sides must offer.
pub const ALPN: &[u8] = b"lakitu/1";

/// Suffix of the server name a dialler sends: `<key>.lakitu`.
pub const SNI_SUFFIX: &str = ".lakitu";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410): version 0, the algorithm, and the
/// seed as an OCTET STRING inside the privateKey OCTET STRING, followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Only Ed25519 handshake signatures are accepted: node keys are Ed25519 and nothing else.
static ED25519_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ED25519],
    mapping: &[(SignatureScheme::ED25519, &[webpki::ring::ED25519])],
};

/// Why the TLS identity could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rcgen refused the key or the certificate parameters.
    #[error("cannot build the node certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// This node's certificate and private key, built from its ed25519 seed.
pub(crate) struct Identity {
    /// The node's public key.
    pub key: [u8; 32],
    cert: CertificateDer<'static>,
    pkcs8: Vec<u8>,
}

impl Identity {
    /// Build the self-signed certificate for `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, TlsError> {
        let pkcs8 = ed25519_pkcs8(seed);
        let der = PrivatePkcs8KeyDer::from(pkcs8.as_slice());
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)?;
        let key = ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes();
        // The names are informative only: peers pin the key, never a name or a CA.
        let params =
            rcgen::CertificateParams::new(vec![format!("{}{SNI_SUFFIX}", encode_key(&key))])?;
        let cert = params.self_signed(&pair)?.der().clone();
        Ok(Identity { key, cert, pkcs8 })
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    /// The rustls server side: requires a client certificate, accepts any Ed25519 key that
    /// `admit` (when given) allows.
    pub fn server_config(
        &self,
        admit: Option<crate::config::Admit>,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(AnyEd25519Client { admit }))
            .with_single_cert(self.chain(), self.private_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client side: presents our certificate, pins the server to the key named in
    /// the server name.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServer))
            .with_client_auth_cert(self.chain(), self.private_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PKCS#8 v1 encoding of an Ed25519 seed, the form rcgen and rustls (through ring) accept.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + 32);
    der.extend_from_slice(&ED25519_PKCS8_PREFIX);
    der.extend_from_slice(seed);
    der
}

/// The server name a dialler sends to reach the node with `key`.
pub(crate) fn server_name(key: &[u8; 32]) -> String {
    format!("{}{SNI_SUFFIX}", encode_key(key))
}

/// The node key a server name asks for, if it is one of ours.
fn expected_key(name: &ServerName<'_>) -> Option<[u8; 32]> {
    let ServerName::DnsName(dns) = name else {
        return None;
    };
    let label = dns.as_ref().strip_suffix(SNI_SUFFIX)?;
    decode_key(label).ok()
}

/// The Ed25519 key a DER certificate carries, or `None` if it is not a parsable certificate
/// with an Ed25519 key.
pub(crate) fn cert_key(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    spki_key(spki.as_ref())
}

/// The key of an Ed25519 SubjectPublicKeyInfo, refusing every other algorithm and any
/// trailing or missing byte.
fn spki_key(spki: &[u8]) -> Option<[u8; 32]> {
    let key = spki.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    key.try_into().ok()
}

/// The node key of the peer of an established connection (verified during the handshake).
pub(crate) fn peer_key(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    cert_key(certs.first()?)
}

fn not_ed25519() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn refuse() -> rustls::Error {
    // Maps to the `access_denied` alert, which the dialler recognises as a wrong key.
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Shared signature checks: TLS 1.2 never (QUIC is TLS 1.3 only), TLS 1.3 with Ed25519 only.
fn tls13_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &ED25519_ONLY)
}

/// Dialler side: the server must present exactly the key named in the server name.
#[derive(Debug)]
struct PinnedServer;

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let expected = expected_key(server_name).ok_or_else(refuse)?;
        match cert_key(end_entity) {
            Some(key) if key == expected => Ok(ServerCertVerified::assertion()),
            Some(key) => {
                tracing::warn!(
                    expected = %encode_key(&expected),
                    presented = %encode_key(&key),
                    "QUIC peer presented another key than its address names"
                );
                Err(refuse())
            }
            None => Err(not_ed25519()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Listener side: any Ed25519 client key the node's `admit` allows is accepted here and
/// reported with each frame.
struct AnyEd25519Client {
    admit: Option<crate::config::Admit>,
}

impl std::fmt::Debug for AnyEd25519Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyEd25519Client")
            .field("admit", &self.admit.is_some())
            .finish()
    }
}

impl ClientCertVerifier for AnyEd25519Client {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match cert_key(end_entity) {
            Some(key) if self.admit.as_ref().is_none_or(|admit| admit(&key)) => {
                Ok(ClientCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(not_ed25519()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_node_key_derived_like_ed25519_dalek() {
        let seed = [42u8; 32];
        let id = Identity::from_seed(&seed).unwrap();
        let dalek = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        assert_eq!(id.key, dalek);
        assert_eq!(cert_key(&id.cert), Some(dalek));
    }

    #[test]
    fn server_name_round_trips_to_the_expected_key() {
        let key = [9u8; 32];
        let name = ServerName::try_from(server_name(&key)).unwrap();
        assert_eq!(expected_key(&name), Some(key));
        let other = ServerName::try_from("example.org").unwrap();
        assert_eq!(expected_key(&other), None);
    }

    #[test]
    fn spki_of_other_algorithms_or_lengths_is_refused() {
        let mut good = ED25519_SPKI_PREFIX.to_vec();
        good.extend_from_slice(&[1; 32]);
        assert_eq!(spki_key(&good), Some([1; 32]));
        assert_eq!(spki_key(&good[..good.len() - 1]), None);
        let mut long = good.clone();
        long.push(0);
        assert_eq!(spki_key(&long), None);
        let mut other_oid = good.clone();
        other_oid[8] = 0x71; // Ed448
        assert_eq!(spki_key(&other_oid), None);
        assert_eq!(
            cert_key(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            None
        );
    }

    #[test]
    fn configs_build_with_ring_and_tls13_only() {
        let id = Identity::from_seed(&[3; 32]).unwrap();
        let server = id.server_config(None).unwrap();
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        let client = id.client_config().unwrap();
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
    }
}
