//! The fake's TLS certificates: self-signed, or issued by a private CA made at start (the way
//! on-premises Exchange usually is), signed with the algorithm a test asks for, and the
//! RFC 5929 `tls-server-end-point` channel binding an NTLM client must send for it.
//!
//! Owns making certificates and the binding the fake expects; it computes that binding from
//! the algorithm it signed with, never by reading the certificate back as the client does, so
//! a client that picks the wrong hash is caught.

use std::sync::Arc;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha384, Sha512};

use super::FakeError;

/// The signature on the fake's server certificate (what signs it: the CA, or the certificate
/// itself when self-signed), which decides the channel binding's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSignature {
    /// ECDSA P-256 with SHA-256 (binding hash SHA-256).
    #[default]
    EcdsaSha256,
    /// ECDSA P-384 with SHA-384 (binding hash SHA-384).
    EcdsaSha384,
    /// Ed25519 (no hash of its own; Windows and exsync bind with SHA-256).
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (needs [`FakeTls::rsa_key_pem`]).
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384 (needs [`FakeTls::rsa_key_pem`]).
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512 (needs [`FakeTls::rsa_key_pem`]).
    RsaSha512,
}

impl CertificateSignature {
    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CertificateSignature::EcdsaSha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CertificateSignature::EcdsaSha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CertificateSignature::Ed25519 => &rcgen::PKCS_ED25519,
            CertificateSignature::RsaSha256 => &rcgen::PKCS_RSA_SHA256,
            CertificateSignature::RsaSha384 => &rcgen::PKCS_RSA_SHA384,
            CertificateSignature::RsaSha512 => &rcgen::PKCS_RSA_SHA512,
        }
    }

    fn is_rsa(self) -> bool {
        matches!(
            self,
            CertificateSignature::RsaSha256
                | CertificateSignature::RsaSha384
                | CertificateSignature::RsaSha512
        )
    }

    /// RFC 5929 §4.1: the certificate's signature hash, SHA-256 for anything weaker or
    /// without one.
    fn binding_digest(self, certificate: &[u8]) -> Vec<u8> {
        match self {
            CertificateSignature::EcdsaSha384 | CertificateSignature::RsaSha384 => {
                Sha384::digest(certificate).to_vec()
            }
            CertificateSignature::RsaSha512 => Sha512::digest(certificate).to_vec(),
            CertificateSignature::EcdsaSha256
            | CertificateSignature::Ed25519
            | CertificateSignature::RsaSha256 => Sha256::digest(certificate).to_vec(),
        }
    }
}

/// How the fake's TLS certificate is made.
#[derive(Debug, Clone, Default)]
pub struct FakeTls {
    /// The signature on the server certificate.
    pub signature: CertificateSignature,
    /// Issue the server certificate from a private CA made at start (its certificate is
    /// [`super::FakeExchange::ca_certificate_pem`]); otherwise the certificate is self-signed.
    pub private_ca: bool,
    /// An RSA private key (PKCS#8 PEM) for the RSA signatures: the CA's key, or the
    /// certificate's own when self-signed (ring, the crypto backend, cannot generate RSA keys).
    pub rsa_key_pem: Option<String>,
}

/// Extended Protection for Authentication (IIS `ExtendedProtectionTokenChecking`): whether an
/// NTLM sign-in over TLS must carry the channel binding of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtendedProtection {
    /// No check (`None`).
    Off,
    /// A binding the client sends must be right; none at all is accepted (`Allow`).
    Allow,
    /// The right binding is required (`Require`, the strictest; exsync always sends one).
    #[default]
    Require,
}

/// A made certificate: the server configuration and what clients need to know.
pub(crate) struct Made {
    pub(crate) config: rustls::ServerConfig,
    pub(crate) certificate_pem: String,
    pub(crate) ca_certificate_pem: Option<String>,
    /// MsvAvChannelBindings value an NTLM client must send on these connections.
    pub(crate) channel_binding: [u8; 16],
}

fn tls_error(e: impl std::fmt::Display) -> FakeError {
    FakeError::Tls(e.to_string())
}

fn signing_key(
    signature: CertificateSignature,
    rsa_key_pem: Option<&str>,
) -> Result<rcgen::KeyPair, FakeError> {
    if signature.is_rsa() {
        let pem = rsa_key_pem.ok_or_else(|| {
            FakeError::Tls(format!("{signature:?} needs an RSA key (rsa_key_pem)"))
        })?;
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(pem, signature.algorithm()).map_err(tls_error)
    } else {
        rcgen::KeyPair::generate_for(signature.algorithm()).map_err(tls_error)
    }
}

/// Make the certificate(s) for localhost / 127.0.0.1 and a rustls server configuration.
pub(crate) fn make(spec: &FakeTls) -> Result<Made, FakeError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut leaf_params = rcgen::CertificateParams::new(names).map_err(tls_error)?;
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-exchange");
    let (leaf_der, leaf_pem, leaf_key_der, ca_pem) = if spec.private_ca {
        let ca_key = signing_key(spec.signature, spec.rsa_key_pem.as_deref())?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Fake Exchange private CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_error)?;
        let leaf_key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_error)?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(tls_error)?;
        (
            leaf.der().to_vec(),
            leaf.pem(),
            leaf_key.serialize_der(),
            Some(ca.pem()),
        )
    } else {
        let key = signing_key(spec.signature, spec.rsa_key_pem.as_deref())?;
        let leaf = leaf_params.self_signed(&key).map_err(tls_error)?;
        (leaf.der().to_vec(), leaf.pem(), key.serialize_der(), None)
    };
    let binding = channel_binding(&spec.signature.binding_digest(&leaf_der));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key_der.into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_no_client_auth()
    .with_single_cert(vec![leaf_der.into()], key)
    .map_err(tls_error)?;
    Ok(Made {
        config,
        certificate_pem: leaf_pem,
        ca_certificate_pem: ca_pem,
        channel_binding: binding,
    })
}

/// MsvAvChannelBindings for `tls-server-end-point:<digest>` (\[MS-NLMP\] 3.1.5.1.2: MD5 of a
/// gss_channel_bindings_struct with no addresses), written out here, apart from the client's
/// code.
fn channel_binding(digest: &[u8]) -> [u8; 16] {
    let mut application_data = b"tls-server-end-point:".to_vec();
    application_data.extend_from_slice(digest);
    let mut md5 = Md5::new();
    md5.update([0u8; 16]);
    md5.update((application_data.len() as u32).to_le_bytes());
    md5.update(&application_data);
    md5.finalize().into()
}
