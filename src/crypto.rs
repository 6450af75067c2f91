//! Credentials at rest: AES-256-GCM encryption of passwords and client secrets.
//!
//! Owns the credential key (read from a file or an environment variable named in config) and
//! the stored format of an encrypted secret. A wrong key or a tampered value is a clear error,
//! never garbage credentials. Must never print, log or put into an error a key or a plaintext.
//!
//! Stored format (`BYTEA`): `version (1) ‖ key id (8) ‖ nonce (12) ‖ ciphertext+tag`. The key
//! id is a hash of the key, so "encrypted with another key" is told apart from "corrupted".
//! The associated data binds each value to its table, column and row, so a ciphertext copied
//! into another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use uuid::Uuid;

use crate::config::SecuritySettings;

const FORMAT_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why a secret could not be encrypted or decrypted, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Neither `security.credential_key_file` nor `security.credential_key_env` is set.
    #[error("no credential key configured: set security.credential_key_file or security.credential_key_env (create a key with `exsync gen-key`)")]
    NoKeyConfigured,
    /// The key file could not be read.
    #[error("cannot read credential key file {path}: {reason}")]
    KeyFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The environment variable named in config is not set.
    #[error("credential key environment variable {name} is not set")]
    KeyEnvMissing {
        /// The variable's name.
        name: String,
    },
    /// The key text is not 32 bytes of base64 or hex.
    #[error("credential key from {source_name} is not 32 bytes in base64 or hex")]
    KeyMalformed {
        /// Where it came from (file path or variable name).
        source_name: String,
    },
    /// The value was encrypted with a different key than the ones configured.
    #[error("{slot} was encrypted with another credential key (key id {found}; configured key id {expected}): configure that key, or set the secret again with `exsync apply`")]
    WrongKey {
        /// Which stored value.
        slot: String,
        /// Key id stored with the value.
        found: String,
        /// Key id of the configured key.
        expected: String,
    },
    /// The value is truncated, tampered with, or belongs to another row.
    #[error("{slot} is corrupt or does not belong to this row: set the secret again with `exsync apply`")]
    Corrupt {
        /// Which stored value.
        slot: String,
    },
    /// The stored format version is unknown (written by a newer exsync?).
    #[error("{slot} uses unknown encryption format version {version}")]
    UnknownFormat {
        /// Which stored value.
        slot: String,
        /// The version byte found.
        version: u8,
    },
    /// Encryption itself failed (only for absurdly long input).
    #[error("encrypting {slot} failed")]
    EncryptFailed {
        /// Which value.
        slot: String,
    },
}

/// Names one encrypted column of one row: the associated data of its encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSlot {
    /// Table name, e.g. `mailboxes`.
    pub table: &'static str,
    /// Column name, e.g. `password_enc`.
    pub column: &'static str,
    /// Row id.
    pub row: Uuid,
}

impl SecretSlot {
    /// A slot for `table.column` of row `row`.
    pub fn new(table: &'static str, column: &'static str, row: Uuid) -> Self {
        Self { table, column, row }
    }

    fn associated_data(&self) -> Vec<u8> {
        format!("exsync/v1/{}.{}/{}", self.table, self.column, self.row).into_bytes()
    }
}

impl fmt::Display for SecretSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} of row {}", self.table, self.column, self.row)
    }
}

/// A 256-bit credential key; its bytes never leave this module.
pub struct CredentialKey {
    bytes: SecretBox<[u8; 32]>,
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialKey(id {})", hex(&self.id))
    }
}

impl CredentialKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"exsync credential key id\0");
        hasher.update(bytes);
        let digest = hasher.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            bytes: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// Parse a key written as base64 (44 characters) or hex (64 characters).
    pub fn parse(text: &str, source_name: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let malformed = || CryptoError::KeyMalformed {
            source_name: source_name.to_owned(),
        };
        let decoded = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| malformed())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| malformed())?
        };
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| malformed())?;
        Ok(Self::from_bytes(bytes))
    }

    /// Read a key from a file.
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|e| CryptoError::KeyFileUnreadable {
            path: path.to_path_buf(),
            reason: e.kind().to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The key as base64 text, for `exsync gen-key` to write once.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(self.bytes.expose_secret()),
        )
    }

    /// A short public fingerprint of the key (safe to print).
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

/// Encrypts and decrypts stored secrets with the current key (and a previous one, when rotating).
#[derive(Debug)]
pub struct CredentialCipher {
    current: CredentialKey,
    previous: Option<CredentialKey>,
}

impl CredentialCipher {
    /// A cipher with one key.
    pub fn new(current: CredentialKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// A cipher that writes with `current` and can still read values written with `previous`.
    pub fn with_previous(current: CredentialKey, previous: CredentialKey) -> Self {
        Self {
            current,
            previous: Some(previous),
        }
    }

    /// Load the key(s) named in `[security]`.
    pub fn from_settings(settings: &SecuritySettings) -> Result<Self, CryptoError> {
        Self::from_settings_with_env(settings, |name| std::env::var(name).ok())
    }

    /// Same as [`CredentialCipher::from_settings`] with an explicit environment lookup.
    pub fn from_settings_with_env(
        settings: &SecuritySettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CryptoError> {
        let current = match (&settings.credential_key_file, &settings.credential_key_env) {
            (Some(path), _) => CredentialKey::from_file(path)?,
            (None, Some(name)) => {
                let text =
                    env(name).ok_or_else(|| CryptoError::KeyEnvMissing { name: name.clone() })?;
                CredentialKey::parse(&text, name)?
            }
            (None, None) => return Err(CryptoError::NoKeyConfigured),
        };
        let previous = match &settings.previous_credential_key_file {
            Some(path) => Some(CredentialKey::from_file(path)?),
            None => None,
        };
        Ok(Self { current, previous })
    }

    /// Fingerprint of the key new values are written with.
    pub fn current_key_id(&self) -> String {
        self.current.id_hex()
    }

    /// Encrypt a secret for one slot.
    pub fn encrypt(&self, secret: &SecretString, slot: SecretSlot) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(self.current.bytes.expose_secret().into());
        let aad = slot.associated_data();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::EncryptFailed {
                slot: slot.to_string(),
            })?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypt a stored value of one slot.
    pub fn decrypt(&self, stored: &[u8], slot: SecretSlot) -> Result<SecretString, CryptoError> {
        let corrupt = || CryptoError::Corrupt {
            slot: slot.to_string(),
        };
        if stored.len() < HEADER_LEN + 16 {
            return Err(corrupt());
        }
        if stored[0] != FORMAT_VERSION {
            return Err(CryptoError::UnknownFormat {
                slot: slot.to_string(),
                version: stored[0],
            });
        }
        let key_id = &stored[1..1 + KEY_ID_LEN];
        let key = if key_id == self.current.id {
            &self.current
        } else if let Some(previous) = self.previous.as_ref().filter(|p| key_id == p.id) {
            previous
        } else {
            return Err(CryptoError::WrongKey {
                slot: slot.to_string(),
                found: hex(key_id),
                expected: self.current.id_hex(),
            });
        };
        let nonce = &stored[1 + KEY_ID_LEN..HEADER_LEN];
        let cipher = Aes256Gcm::new(key.bytes.expose_secret().into());
        let aad = slot.associated_data();
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &stored[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        let text = String::from_utf8(plain).map_err(|_| corrupt())?;
        Ok(SecretString::from(text))
    }

    /// Whether a stored value was written with a key other than the current one.
    pub fn needs_reencryption(&self, stored: &[u8]) -> bool {
        stored.len() < HEADER_LEN || stored[1..1 + KEY_ID_LEN] != self.current.id
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> SecretSlot {
        SecretSlot::new("mailboxes", "password_enc", Uuid::nil())
    }

    #[test]
    fn encrypted_secret_round_trips_with_the_same_key() {
        let cipher = CredentialCipher::new(CredentialKey::generate());
        let stored = cipher
            .encrypt(&SecretString::from("Summer2026!"), slot())
            .unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("Summer2026!"));
        let back = cipher.decrypt(&stored, slot()).unwrap();
        assert_eq!(back.expose_secret(), "Summer2026!");
    }

    #[test]
    fn wrong_key_is_a_clear_error_not_garbage() {
        let writer = CredentialCipher::new(CredentialKey::generate());
        let reader = CredentialCipher::new(CredentialKey::generate());
        let stored = writer.encrypt(&SecretString::from("pw"), slot()).unwrap();
        let error = reader.decrypt(&stored, slot()).unwrap_err();
        assert!(matches!(error, CryptoError::WrongKey { .. }), "{error}");
        assert!(error.to_string().contains("another credential key"));
    }

    #[test]
    fn ciphertext_moved_to_another_row_does_not_decrypt() {
        let cipher = CredentialCipher::new(CredentialKey::generate());
        let stored = cipher.encrypt(&SecretString::from("pw"), slot()).unwrap();
        let other_row = SecretSlot::new("mailboxes", "password_enc", Uuid::from_u128(7));
        assert!(matches!(
            cipher.decrypt(&stored, other_row),
            Err(CryptoError::Corrupt { .. })
        ));
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let cipher = CredentialCipher::new(CredentialKey::generate());
        let mut stored = cipher.encrypt(&SecretString::from("pw"), slot()).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert!(matches!(
            cipher.decrypt(&stored, slot()),
            Err(CryptoError::Corrupt { .. })
        ));
        assert!(matches!(
            cipher.decrypt(&stored[..10], slot()),
            Err(CryptoError::Corrupt { .. })
        ));
    }

    #[test]
    fn previous_key_still_reads_during_rotation() {
        let old = CredentialKey::generate();
        let old_text = old.to_base64();
        let stored = CredentialCipher::new(old)
            .encrypt(&SecretString::from("pw"), slot())
            .unwrap();
        let rotated = CredentialCipher::with_previous(
            CredentialKey::generate(),
            CredentialKey::parse(old_text.expose_secret(), "test").unwrap(),
        );
        assert_eq!(
            rotated.decrypt(&stored, slot()).unwrap().expose_secret(),
            "pw"
        );
        assert!(rotated.needs_reencryption(&stored));
    }

    #[test]
    fn key_parses_from_base64_and_hex_and_rejects_other_lengths() {
        let key = CredentialKey::generate();
        let b64 = key.to_base64();
        let again = CredentialKey::parse(b64.expose_secret(), "t").unwrap();
        assert_eq!(again.id_hex(), key.id_hex());
        let hex_text = "00".repeat(32);
        assert!(CredentialKey::parse(&hex_text, "t").is_ok());
        assert!(matches!(
            CredentialKey::parse("c2hvcnQ=", "t"),
            Err(CryptoError::KeyMalformed { .. })
        ));
    }

    #[test]
    fn debug_of_a_key_shows_only_its_fingerprint() {
        let key = CredentialKey::generate();
        let b64 = key.to_base64();
        let shown = format!("{key:?}");
        assert!(!shown.contains(b64.expose_secret()));
        assert!(shown.contains(&key.id_hex()));
    }
}
