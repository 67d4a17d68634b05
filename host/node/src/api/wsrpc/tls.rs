//! wsrpc's TLS, as smartcontractkit/wsrpc `credentials/tls.go` has it: TLS 1.3 only, no
//! ALPN, each side one self-signed Ed25519 certificate, and a peer known by its key alone
//! (chains, names and dates are not looked at; the handshake proves the key is held).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// The Ed25519 OID (RFC 8410), as x509-parser spells it.
const ED25519: &str = "1.3.101.112";

/// The server side: presents `pkcs8`'s key in a minimal certificate and asks every client
/// for one Ed25519 certificate (whose key the caller then checks).
pub fn server_config(pkcs8: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let verifier = AnyEd25519Key {
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            vec![minimal_certificate(pkcs8)?],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec())),
        )
        .map_err(|e| format!("the CSA key cannot serve TLS: {e}"))?;
    Ok(Arc::new(config))
}

/// A certificate that is only a carrier for the key, as wsrpc makes them: serial 0, empty
/// subject and issuer, self-signed.
pub fn minimal_certificate(pkcs8: &[u8]) -> Result<CertificateDer<'static>, String> {
    let key = rcgen::KeyPair::try_from(pkcs8).map_err(|e| format!("CSA key: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serial_number = Some(rcgen::SerialNumber::from(vec![0u8]));
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make the CSA certificate: {e}"))?;
    Ok(cert.der().clone())
}

/// The raw Ed25519 public key of a DER certificate, if it holds one.
pub fn ed25519_key(certificate: &[u8]) -> Option<[u8; 32]> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519 {
        return None;
    }
    spki.subject_public_key.data.as_ref().try_into().ok()
}

/// Accepts a client that presents exactly one Ed25519 certificate and proves it holds its
/// key; which keys may stay is decided after the handshake, against the registered nodes
/// (a set that changes at run time).
#[derive(Debug)]
struct AnyEd25519Key {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyEd25519Key {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() || ed25519_key(end_entity).is_none() {
            return Err(rustls::Error::General(
                "wsrpc needs exactly one Ed25519 client certificate".into(),
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("wsrpc is TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::ring::signature::{Ed25519KeyPair, KeyPair as _};

    #[test]
    fn the_certificate_carries_the_key_and_nothing_else() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&::ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let der = minimal_certificate(pkcs8.as_ref()).unwrap();
        assert_eq!(ed25519_key(&der).unwrap(), pair.public_key().as_ref());
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.subject().iter().count(), 0, "empty subject");
        assert_eq!(cert.raw_serial(), &[0]);
        assert!(server_config(pkcs8.as_ref()).is_ok());
    }
}
