//! How a session reaches the server: TCP to the configured host, then StartTLS, direct TLS or
//! (tests only) nothing, with our own rustls settings. tokio-xmpp's stock connectors fix the
//! trust store and resolve through a DNS crate; this one keeps both under our control (extra
//! trust anchors, an explicit opt-in for self-signed test servers, no resolver dependency).

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sasl::common::ChannelBinding;
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStreamElement, initiate_stream,
};

use crate::config::{XmppConfig, XmppError, XmppTls};

/// Any byte stream a session can run on (plain TCP or TLS over it).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The connector handed to tokio-xmpp, which calls it for every (re)connection.
#[derive(Clone)]
pub(crate) struct Connector {
    host: String,
    port: u16,
    tls: XmppTls,
    tls_config: Arc<ClientConfig>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Connector {
    /// Build from the config; `domain` is the JID's domain (the host when no server is set).
    pub(crate) fn new(config: &XmppConfig, domain: &str) -> Result<Self, XmppError> {
        let (host, port) = config
            .server
            .clone()
            .unwrap_or_else(|| (domain.to_string(), config.tls.default_port()));
        Ok(Connector {
            host,
            port,
            tls: config.tls,
            tls_config: Arc::new(tls_config(config)?),
            connect_timeout: config.connect_timeout,
        })
    }

    async fn tcp(&self) -> Result<TcpStream, tokio_xmpp::Error> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
        // Stanzas are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn tls(
        &self,
        io: Box<dyn Io>,
        domain: &str,
    ) -> Result<(Box<dyn Io>, ChannelBinding), tokio_xmpp::Error> {
        let name = pki_types::ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.tls_config.clone());
        let handshake = connector.connect(name, io);
        let stream = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let (_, conn) = stream.get_ref();
        // Channel binding (tls-exporter, RFC 9266) lets SCRAM-PLUS detect a TLS interceptor;
        // defined for TLS 1.3 only.
        let binding = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => conn
                .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                .map(ChannelBinding::TlsExporter)
                .unwrap_or(ChannelBinding::None),
            _ => ChannelBinding::None,
        };
        Ok((Box::new(stream), binding))
    }
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

impl ServerConnector for Connector {
    type Stream = BufStream<Box<dyn Io>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let result = self.connect_inner(jid, ns, timeouts).await;
        if let Err(error) = &result {
            // tokio-xmpp retries on its own and logs only through `log`; say why here.
            tracing::warn!(host = %self.host, port = self.port, %error, "XMPP connect failed");
        }
        result
    }
}

impl Connector {
    async fn connect_inner(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<BufStream<Box<dyn Io>>>, ChannelBinding), tokio_xmpp::Error>
    {
        let domain = jid.domain().as_str();
        let tcp: Box<dyn Io> = Box::new(self.tcp().await?);
        let (io, binding) = match self.tls {
            XmppTls::Plain => (tcp, ChannelBinding::None),
            XmppTls::DirectTls => self.tls(tcp, domain).await?,
            XmppTls::StartTls => {
                let stream =
                    initiate_stream(BufStream::new(tcp), ns, header(domain), timeouts).await?;
                let (features, mut stream) = stream
                    .recv_features::<XmppStreamElement>()
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?;
                if !features.can_starttls() {
                    return Err(tokio_xmpp::Error::Protocol(
                        tokio_xmpp::error::ProtocolError::NoTls,
                    ));
                }
                stream
                    .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                        starttls::Request,
                    )))
                    .await?;
                loop {
                    match stream.next().await {
                        Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                        Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                        Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                        Some(Err(ReadError::ParseError(e))) => {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
                        }
                        None | Some(Err(ReadError::StreamFooterReceived)) => {
                            return Err(tokio_xmpp::Error::Disconnected);
                        }
                    }
                }
                self.tls(stream.into_inner().into_inner(), domain).await?
            }
        };
        let stream = initiate_stream(BufStream::new(io), ns, header(domain), timeouts).await?;
        Ok((stream, binding))
    }
}

/// rustls settings: the web roots plus `ca_file`, or no verification at all on explicit opt-in
/// (see `lakitu_transport::tls`).
fn tls_config(config: &XmppConfig) -> Result<ClientConfig, XmppError> {
    let mut extra = Vec::new();
    if let Some(path) = config
        .ca_file
        .as_ref()
        .filter(|_| !config.accept_invalid_certs)
    {
        use pki_types::pem::PemObject;
        let ca_err = |why: String| XmppError::CaFile {
            path: path.clone(),
            why,
        };
        extra = pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        let mut check = RootCertStore::empty();
        if check.add_parsable_certificates(extra.clone()).0 == 0 {
            return Err(ca_err("no usable certificate".into()));
        }
    }
    lakitu_transport::tls::client_config(config.accept_invalid_certs, extra)
        .map_err(|e| XmppError::Tls(e.to_string()))
}
