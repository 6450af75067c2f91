//! Which server certificates exsync trusts, for every HTTPS connection it makes to Exchange:
//! EWS (Basic and OAuth through the pooled transport), NTLM (its own connections) and the
//! OAuth token endpoint alike.
//!
//! Owns building the one rustls client configuration from the operating system's store (what
//! `ca-certificates` installs, or the bundle `SSL_CERT_FILE` / `SSL_CERT_DIR` point at) plus
//! an optional PEM bundle (`http.ca_file`, an organisation's private CA), and the "verify
//! nothing" configuration that `http.accept_invalid_certs` asks for. Also owns reading the
//! hash RFC 5929 `tls-server-end-point` channel bindings use from a server certificate.
//! Must not read settings files or log secrets; it logs only counts and paths.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the trusted roots could not be assembled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// `http.ca_file` cannot be read.
    #[error("cannot read the CA bundle {path}: {reason}")]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// `http.ca_file` holds no usable certificate.
    #[error("the CA bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    CaFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of `http.ca_file` is not a usable trust anchor.
    #[error("the CA bundle {path} holds an unusable certificate: {reason}")]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Where the operating system's trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SystemRoots {
    /// What the machine provides, read as OpenSSL does: the bundle named by `SSL_CERT_FILE`
    /// and the directory named by `SSL_CERT_DIR` when either is set, else the platform's store
    /// (on Debian: `/etc/ssl/certs`, what the `ca-certificates` package installs). The
    /// environment is read here and nowhere else.
    #[default]
    Native,
    /// Exactly the certificates of this PEM bundle (a test names the file it would otherwise
    /// set `SSL_CERT_FILE` to, without touching the process environment).
    Bundle(PathBuf),
    /// No system roots: only `http.ca_file` is trusted.
    Empty,
}

/// What to trust, from `[http]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSettings {
    /// The operating system's roots.
    pub system: SystemRoots,
    /// A PEM bundle trusted in addition (`http.ca_file`): the organisation's own CA.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (`http.accept_invalid_certs`): development only, loudly warned.
    pub accept_invalid_certs: bool,
}

/// How many roots came from where (for the start-up log line and `check-config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSummary {
    /// Roots taken from the operating system's store.
    pub system_roots: usize,
    /// Roots taken from `http.ca_file`.
    pub ca_file_roots: usize,
    /// System certificates that could not be read or used (they are skipped).
    pub skipped: Vec<String>,
    /// Verification is off.
    pub accept_invalid_certs: bool,
}

/// The trusted roots, ready to build client configurations from.
#[derive(Debug, Clone)]
pub struct Trust {
    roots: Arc<rustls::RootCertStore>,
    accept_invalid_certs: bool,
    summary: TrustSummary,
}

impl Trust {
    /// Load the system roots and `ca_file`. A missing or empty `ca_file` is an error (it was
    /// asked for); an unreadable system certificate is skipped and listed in the summary.
    pub fn load(settings: &TrustSettings) -> Result<Trust, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut summary = TrustSummary {
            accept_invalid_certs: settings.accept_invalid_certs,
            ..TrustSummary::default()
        };
        let system = match &settings.system {
            SystemRoots::Native => {
                let found = rustls_native_certs::load_native_certs();
                summary
                    .skipped
                    .extend(found.errors.iter().map(|e| bounded(&e.to_string())));
                found.certs
            }
            SystemRoots::Bundle(path) => match read_bundle(path) {
                Ok(certs) => certs,
                Err(e) => {
                    summary.skipped.push(bounded(&e.to_string()));
                    Vec::new()
                }
            },
            SystemRoots::Empty => Vec::new(),
        };
        let (added, ignored) = roots.add_parsable_certificates(system);
        summary.system_roots = added;
        if ignored > 0 {
            summary.skipped.push(format!(
                "{ignored} system certificate(s) are not usable roots"
            ));
        }
        if let Some(path) = &settings.ca_file {
            let certs = read_bundle(path)?;
            for cert in certs {
                roots.add(cert).map_err(|e| TlsError::CaFileInvalid {
                    path: path.clone(),
                    reason: bounded(&e.to_string()),
                })?;
                summary.ca_file_roots += 1;
            }
        }
        Ok(Trust {
            roots: Arc::new(roots),
            accept_invalid_certs: settings.accept_invalid_certs,
            summary,
        })
    }

    /// Where the roots came from.
    pub fn summary(&self) -> &TrustSummary {
        &self.summary
    }

    /// A rustls client configuration with these roots (or none checked, when verification is
    /// off) offering `alpn` (e.g. `h2` and `http/1.1`; NTLM needs `http/1.1` alone).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut config = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(Arc::clone(&self.roots))
                .with_no_client_auth()
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// The warning printed at start and by `check-config` when verification is off, or when
    /// nothing at all is trusted; `None` when the trust is sound.
    pub fn warning(&self) -> Option<String> {
        if self.accept_invalid_certs {
            Some(INSECURE_WARNING.to_owned())
        } else if self.roots.is_empty() {
            Some(
                "no trusted root certificate: every HTTPS connection to Exchange will fail. \
                 Install ca-certificates, point SSL_CERT_FILE at a bundle, or set http.ca_file"
                    .to_owned(),
            )
        } else {
            None
        }
    }
}

/// The loud warning for `http.accept_invalid_certs = true`.
pub const INSECURE_WARNING: &str =
    "TLS CERTIFICATE VERIFICATION IS OFF (http.accept_invalid_certs = true): \
     any machine on the network path can impersonate Exchange, read the mail and capture the \
     credentials exsync sends. Trust the server's CA with http.ca_file instead";

/// Every certificate of a PEM bundle (other PEM sections, such as keys, are ignored).
pub fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::CaFileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::CaFileInvalid {
            path: path.to_path_buf(),
            reason: bounded(&e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(TlsError::CaFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Accepts any server certificate (signatures still checked): `http.accept_invalid_certs`.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 5929 tls-server-end-point
// ---------------------------------------------------------------------------------------------

/// The hash function RFC 5929 §4.1 picks for a certificate's `tls-server-end-point` binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPointHash {
    /// SHA-256: for SHA-256-, SHA-1- and MD5-signed certificates (and, as Windows does, for
    /// signatures with no single hash such as Ed25519, or ones not recognised).
    Sha256,
    /// SHA-384: for SHA-384-signed certificates.
    Sha384,
    /// SHA-512: for SHA-512-signed certificates.
    Sha512,
}

impl EndPointHash {
    /// The hash of `certificate` (DER) with this function.
    pub fn digest(self, certificate: &[u8]) -> Vec<u8> {
        match self {
            EndPointHash::Sha256 => Sha256::digest(certificate).to_vec(),
            EndPointHash::Sha384 => Sha384::digest(certificate).to_vec(),
            EndPointHash::Sha512 => Sha512::digest(certificate).to_vec(),
        }
    }
}

// Signature algorithm OIDs (DER content octets).
const OID_MD5_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];
const OID_SHA1_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_DSA_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x03];
const OID_DSA_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x04];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// The RFC 5929 hash for a server certificate (DER), read from its `signatureAlgorithm`:
/// SHA-384 and SHA-512 signatures keep their hash, everything else (SHA-256, SHA-1, MD5,
/// Ed25519, unknown or unreadable) uses SHA-256. RSASSA-PSS names its hash in the
/// parameters.
pub fn end_point_hash(certificate: &[u8]) -> EndPointHash {
    signature_algorithm(certificate)
        .map(|(oid, params)| match oid {
            OID_SHA384_RSA | OID_ECDSA_SHA384 | OID_DSA_SHA384 => EndPointHash::Sha384,
            OID_SHA512_RSA | OID_ECDSA_SHA512 | OID_DSA_SHA512 => EndPointHash::Sha512,
            OID_RSA_PSS => pss_hash(params),
            OID_MD5_RSA | OID_SHA1_RSA | OID_SHA256_RSA => EndPointHash::Sha256,
            _ => EndPointHash::Sha256,
        })
        .unwrap_or(EndPointHash::Sha256)
}

/// The `tls-server-end-point` channel binding data of RFC 5929 for `certificate` (DER): its
/// hash with [`end_point_hash`].
pub fn tls_server_end_point(certificate: &[u8]) -> Vec<u8> {
    end_point_hash(certificate).digest(certificate)
}

/// RSASSA-PSS-params: `hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1`.
fn pss_hash(params: &[u8]) -> EndPointHash {
    let hash = (|| {
        let (tag, body, _) = der_item(params)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, explicit, _) = der_item(body)?;
        if tag != 0xa0 {
            return None; // hashAlgorithm absent: SHA-1
        }
        let (tag, alg, _) = der_item(explicit)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, oid, _) = der_item(alg)?;
        (tag == 0x06).then_some(oid)
    })();
    match hash {
        Some(OID_SHA384) => EndPointHash::Sha384,
        Some(OID_SHA512) => EndPointHash::Sha512,
        _ => EndPointHash::Sha256,
    }
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`:
/// the signatureAlgorithm's OID and the bytes after it inside the AlgorithmIdentifier.
fn signature_algorithm(certificate: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, body, _) = der_item(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _tbs, rest) = der_item(body)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, algorithm, _) = der_item(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, params) = der_item(algorithm)?;
    (tag == 0x06).then_some((oid, params))
}

/// One DER TLV at the start of `input`: (tag, contents, what follows). Bounded: definite
/// lengths of at most 4 length octets, never reading past `input`.
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (octets, rest) = rest.split_at(count);
        let len = octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal `Certificate` whose signatureAlgorithm is `oid` (with `params`).
    fn fake_certificate(oid: &[u8], params: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if body.len() < 0x80 {
                out.push(body.len() as u8);
            } else {
                out.push(0x82);
                out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(body);
            out
        }
        let tbs = tlv(0x30, &[0x02, 0x01, 0x01]);
        let mut alg_body = tlv(0x06, oid);
        alg_body.extend_from_slice(params);
        let alg = tlv(0x30, &alg_body);
        let sig = tlv(0x03, &[0x00, 0xaa, 0xbb]);
        let mut body = tbs;
        body.extend(alg);
        body.extend(sig);
        tlv(0x30, &body)
    }

    #[test]
    fn the_binding_hash_follows_the_certificates_signature_algorithm() {
        let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let ed25519 = [0x2b, 0x65, 0x70];
        let cases: [(&[u8], EndPointHash); 10] = [
            (OID_MD5_RSA, EndPointHash::Sha256),
            (OID_SHA1_RSA, EndPointHash::Sha256),
            (OID_SHA256_RSA, EndPointHash::Sha256),
            (OID_SHA384_RSA, EndPointHash::Sha384),
            (OID_SHA512_RSA, EndPointHash::Sha512),
            (&ecdsa_sha256, EndPointHash::Sha256),
            (OID_ECDSA_SHA384, EndPointHash::Sha384),
            (OID_ECDSA_SHA512, EndPointHash::Sha512),
            (&ed25519, EndPointHash::Sha256),
            (&[0x2a, 0x03], EndPointHash::Sha256),
        ];
        for (oid, want) in cases {
            let cert = fake_certificate(oid, &[0x05, 0x00]);
            assert_eq!(end_point_hash(&cert), want, "{oid:02x?}");
            assert_eq!(tls_server_end_point(&cert), want.digest(&cert));
        }
    }

    #[test]
    fn generated_certificates_are_read_by_their_signature() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, EndPointHash::Sha256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, EndPointHash::Sha384),
            (&rcgen::PKCS_ED25519, EndPointHash::Sha256),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["x.test".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            assert_eq!(end_point_hash(cert.der()), want, "{alg:?}");
        }
    }

    #[test]
    fn rsa_pss_certificates_use_the_hash_named_in_their_parameters() {
        // RSASSA-PSS-params { hashAlgorithm [0] { sha384 } }
        let mut alg = vec![0x06, OID_SHA384.len() as u8];
        alg.extend_from_slice(OID_SHA384);
        let mut hash_alg = vec![0x30, alg.len() as u8];
        hash_alg.extend(alg);
        let mut explicit = vec![0xa0, hash_alg.len() as u8];
        explicit.extend(hash_alg);
        let mut params = vec![0x30, explicit.len() as u8];
        params.extend(explicit);
        let cert = fake_certificate(OID_RSA_PSS, &params);
        assert_eq!(end_point_hash(&cert), EndPointHash::Sha384);
        // Absent hashAlgorithm means SHA-1, hence SHA-256.
        let cert = fake_certificate(OID_RSA_PSS, &[0x30, 0x00]);
        assert_eq!(end_point_hash(&cert), EndPointHash::Sha256);
    }

    #[test]
    fn unreadable_certificates_fall_back_to_sha256_without_panicking() {
        for bytes in [
            &b""[..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x00],
        ] {
            assert_eq!(end_point_hash(bytes), EndPointHash::Sha256);
        }
    }

    #[test]
    fn the_insecure_setting_warns_and_an_empty_store_warns() {
        let insecure = Trust::load(&TrustSettings {
            system: SystemRoots::Empty,
            ca_file: None,
            accept_invalid_certs: true,
        })
        .unwrap();
        assert!(insecure.warning().unwrap().contains("VERIFICATION IS OFF"));
        let empty = Trust::load(&TrustSettings {
            system: SystemRoots::Empty,
            ..TrustSettings::default()
        })
        .unwrap();
        assert!(empty.warning().unwrap().contains("no trusted root"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = Trust::load(&TrustSettings {
            system: SystemRoots::Empty,
            ca_file: Some(path),
            accept_invalid_certs: false,
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::CaFileEmpty { .. }), "{error}");
        let missing = Trust::load(&TrustSettings {
            system: SystemRoots::Empty,
            ca_file: Some(dir.path().join("nope.pem")),
            accept_invalid_certs: false,
        })
        .unwrap_err();
        assert!(matches!(missing, TlsError::CaFileUnreadable { .. }));
    }
}
