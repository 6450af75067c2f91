//! NTLM authentication (\[MS-NLMP\]), NTLMv2 only: the client side exsync uses to log on to
//! on-premises Exchange, and the server side the fake Exchange uses to check its clients.
//!
//! Owns the three NTLM messages (NEGOTIATE, CHALLENGE, AUTHENTICATE), their AV pairs, the
//! NTLMv2 response (NTOWFv2, NTProofStr, the client blob), its verification, the optional
//! channel binding token of Extended Protection, and the framing of tokens in
//! `WWW-Authenticate` / `Authorization` header values. Pure protocol: no HTTP, no I/O, no
//! logging, and no import from the rest of the crate (it will move under `ews`).
//!
//! Must not offer, send or accept LM or NTLMv1 (they need DES and are broken); must never
//! panic, nor allocate more than a bounded multiple of its input, on hostile bytes; must never
//! print a password, a key or an NTLMv2 response (a captured response can be cracked offline).
//!
//! Reference: \[MS-NLMP\] 2.2.1.1 NEGOTIATE_MESSAGE, 2.2.1.2 CHALLENGE_MESSAGE,
//! 2.2.1.3 AUTHENTICATE_MESSAGE, 2.2.2.1 AV_PAIR, 2.2.2.5 NEGOTIATE flags,
//! 2.2.2.7 NTLMv2_CLIENT_CHALLENGE, 3.1.5.1.2 (client), 3.2.5.1.2 (server),
//! 3.3.2 NTLM v2 Authentication; test vectors from 4.2.4.
//!
//! # Using it over HTTP (Exchange / IIS)
//!
//! NTLM authenticates a TCP connection, not a request. The client sends the request with
//! `Authorization: NTLM <negotiate>` ([`to_header`] of [`negotiate_message`]); the server
//! answers `401` with `WWW-Authenticate: NTLM <challenge>` ([`from_www_authenticate`], then
//! [`parse_challenge`]); the client sends the request again, **on the same connection**, with
//! `Authorization: NTLM <authenticate>` ([`authenticate_message_now`]). HTTP/1.1 only (IIS
//! does not do NTLM over HTTP/2), keep-alive, read each 401 body to its end. A 401 answering
//! the AUTHENTICATE message means the credentials (or the channel binding) were refused:
//! stop, do not loop. With Extended Protection on (Exchange 2019 CU14 and later default),
//! pass the server certificate's `tls-server-end-point` hash as [`ChannelBindings`].

use std::fmt;
use std::ops::{BitAnd, BitOr};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

/// Every NTLM message starts with these 8 bytes.
const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// MessageType of a NEGOTIATE_MESSAGE.
const TYPE_NEGOTIATE: u32 = 1;
/// MessageType of a CHALLENGE_MESSAGE.
const TYPE_CHALLENGE: u32 = 2;
/// MessageType of an AUTHENTICATE_MESSAGE.
const TYPE_AUTHENTICATE: u32 = 3;

/// NEGOTIATE_MESSAGE without Version: signature, type, flags, domain and workstation fields.
const NEGOTIATE_HEADER_LEN: usize = 32;
/// The oldest CHALLENGE_MESSAGE layout: up to and including ServerChallenge.
const CHALLENGE_MIN_LEN: usize = 32;
/// CHALLENGE_MESSAGE up to and including TargetInfoFields (no Version).
const CHALLENGE_HEADER_LEN: usize = 48;
/// AUTHENTICATE_MESSAGE up to and including NegotiateFlags (no Version, no MIC).
const AUTHENTICATE_HEADER_LEN: usize = 64;

/// Largest message accepted for parsing. Real ones are a few hundred bytes; every field
/// length is 16 bits, so nothing legitimate comes near this.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Largest base64 token looked at in a header value (decodes to at most [`MAX_MESSAGE_LEN`]).
const MAX_TOKEN_B64_LEN: usize = MAX_MESSAGE_LEN / 3 * 4 + 4;
/// NTLMv2_CLIENT_CHALLENGE up to the AV pairs: RespType, HiRespType, Reserved1, Reserved2,
/// TimeStamp, ChallengeFromClient, Reserved3.
const BLOB_HEADER_LEN: usize = 28;
/// Length of NTProofStr at the start of an NTLMv2 response.
const NT_PROOF_LEN: usize = 16;
/// Longest target name the fake server puts in a CHALLENGE_MESSAGE, in UTF-16 code units
/// (a DNS name is at most 255 characters).
const MAX_TARGET_NAME_UNITS: usize = 255;

/// AvId of MsvAvEOL, the end of an AV pair list.
const AV_EOL: u16 = 0;
/// AvId of MsvAvNbComputerName.
const AV_NB_COMPUTER_NAME: u16 = 1;
/// AvId of MsvAvNbDomainName.
const AV_NB_DOMAIN_NAME: u16 = 2;
/// AvId of MsvAvDnsComputerName.
const AV_DNS_COMPUTER_NAME: u16 = 3;
/// AvId of MsvAvDnsDomainName.
const AV_DNS_DOMAIN_NAME: u16 = 4;
/// AvId of MsvAvDnsTreeName.
const AV_DNS_TREE_NAME: u16 = 5;
/// AvId of MsvAvFlags.
const AV_FLAGS: u16 = 6;
/// AvId of MsvAvTimestamp.
const AV_TIMESTAMP: u16 = 7;
/// AvId of MsvAvTargetName.
const AV_TARGET_NAME: u16 = 9;
/// AvId of MsvAvChannelBindings.
const AV_CHANNEL_BINDINGS: u16 = 10;

/// Base64 as servers send it: standard alphabet, padding optional.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacMd5 = Hmac<Md5>;

// ---------------------------------------------------------------------------------------------
// Flags, errors, small value types
// ---------------------------------------------------------------------------------------------

/// NegotiateFlags of an NTLM message (\[MS-NLMP\] 2.2.2.5), a set of bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NegotiateFlags(u32);

impl NegotiateFlags {
    /// NTLMSSP_NEGOTIATE_UNICODE: strings are UTF-16LE.
    pub const UNICODE: Self = Self(0x0000_0001);
    /// NTLM_NEGOTIATE_OEM: strings in the OEM code page (never sent by this module).
    pub const OEM: Self = Self(0x0000_0002);
    /// NTLMSSP_REQUEST_TARGET: asks the server for its TargetName.
    pub const REQUEST_TARGET: Self = Self(0x0000_0004);
    /// NTLMSSP_NEGOTIATE_SIGN: message integrity (not used over HTTP).
    pub const SIGN: Self = Self(0x0000_0010);
    /// NTLMSSP_NEGOTIATE_SEAL: message confidentiality (not used over HTTP).
    pub const SEAL: Self = Self(0x0000_0020);
    /// NTLMSSP_NEGOTIATE_LM_KEY: LAN Manager session key (never offered).
    pub const LM_KEY: Self = Self(0x0000_0080);
    /// NTLMSSP_NEGOTIATE_NTLM: NTLM (rather than LM) authentication; a server MUST set it.
    pub const NTLM: Self = Self(0x0000_0200);
    /// NTLMSSP_ANONYMOUS: anonymous connection (never offered).
    pub const ANONYMOUS: Self = Self(0x0000_0800);
    /// NTLMSSP_NEGOTIATE_ALWAYS_SIGN: dummy signatures; every modern client sets it.
    pub const ALWAYS_SIGN: Self = Self(0x0000_8000);
    /// NTLMSSP_TARGET_TYPE_DOMAIN: TargetName is a domain name.
    pub const TARGET_TYPE_DOMAIN: Self = Self(0x0001_0000);
    /// NTLMSSP_TARGET_TYPE_SERVER: TargetName is a server name.
    pub const TARGET_TYPE_SERVER: Self = Self(0x0002_0000);
    /// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY: NTLM2 session security, never the LM key.
    pub const EXTENDED_SESSIONSECURITY: Self = Self(0x0008_0000);
    /// NTLMSSP_NEGOTIATE_IDENTIFY: identify-level token.
    pub const IDENTIFY: Self = Self(0x0010_0000);
    /// NTLMSSP_NEGOTIATE_TARGET_INFO: the CHALLENGE carries TargetInfo (needed by NTLMv2).
    pub const TARGET_INFO: Self = Self(0x0080_0000);
    /// NTLMSSP_NEGOTIATE_VERSION: the Version field is present.
    pub const VERSION: Self = Self(0x0200_0000);
    /// NTLMSSP_NEGOTIATE_128: 128-bit session key strength.
    pub const NEGOTIATE_128: Self = Self(0x2000_0000);
    /// NTLMSSP_NEGOTIATE_KEY_EXCH: an encrypted random session key is sent.
    pub const KEY_EXCH: Self = Self(0x4000_0000);
    /// NTLMSSP_NEGOTIATE_56: 56-bit session key strength.
    pub const NEGOTIATE_56: Self = Self(0x8000_0000);

    /// The flags of a raw 32-bit value as read from the wire.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw 32-bit value as written on the wire.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for NegotiateFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitAnd for NegotiateFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for NegotiateFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NegotiateFlags({:#010x})", self.0)
    }
}

/// What exsync's client asks for in its NEGOTIATE_MESSAGE (0x20888205).
///
/// UNICODE (all strings UTF-16; OEM is not offered), REQUEST_TARGET and TARGET_INFO (NTLMv2
/// needs the server's AV pairs), NTLM (MUST be set), ALWAYS_SIGN (what every Windows client
/// sends; servers expect it), EXTENDED_SESSIONSECURITY (never fall back to the LM session key)
/// and 128 (strongest key). Deliberately absent: LM_KEY, OEM, SIGN, SEAL, VERSION and
/// KEY_EXCH. Key exchange only matters for signing and sealing, which HTTP does not use, and
/// would need RC4 for a key nobody reads.
pub const CLIENT_FLAGS: NegotiateFlags = NegotiateFlags(
    NegotiateFlags::UNICODE.0
        | NegotiateFlags::REQUEST_TARGET.0
        | NegotiateFlags::NTLM.0
        | NegotiateFlags::ALWAYS_SIGN.0
        | NegotiateFlags::EXTENDED_SESSIONSECURITY.0
        | NegotiateFlags::TARGET_INFO.0
        | NegotiateFlags::NEGOTIATE_128.0,
);

/// What the fake server's CHALLENGE_MESSAGE announces (0x20898205): the client's set plus
/// TARGET_TYPE_DOMAIN, as a domain-joined Exchange server answers.
pub const SERVER_FLAGS: NegotiateFlags =
    NegotiateFlags(CLIENT_FLAGS.0 | NegotiateFlags::TARGET_TYPE_DOMAIN.0);

/// A field of an NTLM message, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageField {
    /// CHALLENGE_MESSAGE TargetName.
    TargetName,
    /// CHALLENGE_MESSAGE TargetInfo (the server's AV pairs).
    TargetInfo,
    /// AUTHENTICATE_MESSAGE LmChallengeResponse.
    LmChallengeResponse,
    /// AUTHENTICATE_MESSAGE NtChallengeResponse.
    NtChallengeResponse,
    /// AUTHENTICATE_MESSAGE DomainName.
    DomainName,
    /// AUTHENTICATE_MESSAGE UserName.
    UserName,
    /// AUTHENTICATE_MESSAGE Workstation.
    Workstation,
    /// AUTHENTICATE_MESSAGE EncryptedRandomSessionKey.
    EncryptedRandomSessionKey,
    /// The AV pairs inside the client's NTLMv2 blob.
    ClientAvPairs,
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TargetName => "TargetName",
            Self::TargetInfo => "TargetInfo",
            Self::LmChallengeResponse => "LmChallengeResponse",
            Self::NtChallengeResponse => "NtChallengeResponse",
            Self::DomainName => "DomainName",
            Self::UserName => "UserName",
            Self::Workstation => "Workstation",
            Self::EncryptedRandomSessionKey => "EncryptedRandomSessionKey",
            Self::ClientAvPairs => "client AV pairs",
        })
    }
}

/// Why a peer's offer cannot be answered with NTLMv2 as this module speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// The peer did not agree to UTF-16 strings (OEM code pages are not supported).
    UnicodeNotNegotiated,
    /// NTLMSSP_NEGOTIATE_NTLM is clear: the server offers LM only.
    LmOnly,
    /// The CHALLENGE has no TargetInfo: the server predates NTLMv2 or has it switched off.
    NoTargetInfo,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnicodeNotNegotiated => "Unicode strings not negotiated (OEM only)",
            Self::LmOnly => "the server offers LAN Manager authentication only",
            Self::NoTargetInfo => "the challenge has no target info, so NTLMv2 is impossible",
        })
    }
}

/// Why an NTLM message could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The message is shorter than the fixed part of its type.
    #[error("NTLM message is {len} bytes, shorter than the {need} bytes its header needs")]
    Truncated {
        /// Bytes the header needs.
        need: usize,
        /// Bytes received.
        len: usize,
    },
    /// The message is larger than any real NTLM message; refused before parsing.
    #[error("NTLM message is {len} bytes, more than the {max} bytes accepted")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit, [`MAX_MESSAGE_LEN`].
        max: usize,
    },
    /// The message does not start with `NTLMSSP\0`.
    #[error("not an NTLM message: the NTLMSSP signature is missing")]
    BadSignature,
    /// The message is of another type than the one expected here.
    #[error("NTLM message of type {found} where type {expected} was expected")]
    WrongMessageType {
        /// The type this parser reads.
        expected: u32,
        /// The type in the message.
        found: u32,
    },
    /// A field's offset and length point outside the message.
    #[error("NTLM {field} (offset {offset}, length {len}) runs past the end of the {message_len}-byte message")]
    FieldOutOfBounds {
        /// Which field.
        field: MessageField,
        /// Its declared offset.
        offset: u32,
        /// Its declared length.
        len: u16,
        /// The message's real length.
        message_len: usize,
    },
    /// A string is not valid UTF-16LE (odd length or an unpaired surrogate).
    #[error("NTLM {field} is not valid UTF-16LE")]
    NotUtf16 {
        /// Which field (or the field holding the AV pair).
        field: MessageField,
    },
    /// An AV pair's declared length runs past the end of its list.
    #[error("NTLM {field}: the AV pair at byte {at} runs past the end of the list")]
    AvPairTruncated {
        /// The field holding the list.
        field: MessageField,
        /// Where the pair starts inside the list.
        at: usize,
    },
    /// An AV pair list ends without MsvAvEOL.
    #[error("NTLM {field}: the AV pair list has no MsvAvEOL terminator")]
    AvPairsUnterminated {
        /// The field holding the list.
        field: MessageField,
    },
    /// A fixed-size AV pair (flags, timestamp, channel bindings) has another length.
    #[error("NTLM {field}: AV pair {av_id} has length {len}, expected {expected}")]
    AvPairBadLength {
        /// The field holding the list.
        field: MessageField,
        /// The pair's AvId.
        av_id: u16,
        /// Its declared length.
        len: u16,
        /// The length its type requires.
        expected: u16,
    },
    /// The peer's offer cannot be answered with NTLMv2 (LM, NTLMv1 or OEM only).
    #[error("NTLMv2 not possible with this peer: {0}")]
    Unsupported(Unsupported),
    /// A value to send does not fit a 16-bit NTLM length.
    #[error("NTLM {field} would be {len} bytes, more than the 65535 a field can hold")]
    FieldTooLong {
        /// Which field.
        field: MessageField,
        /// Its length in bytes.
        len: usize,
    },
    /// No user name: anonymous NTLM is not offered.
    #[error("NTLM credentials have an empty user name (anonymous NTLM is not offered)")]
    EmptyUserName,
}

/// A Windows FILETIME: 100-nanosecond ticks since 1601-01-01 UTC, as NTLM carries time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileTime(pub u64);

impl FileTime {
    /// FILETIME of 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(116_444_736_000_000_000);

    /// The current time, for a fresh NTLMv2 blob or challenge.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }
}

impl From<DateTime<Utc>> for FileTime {
    /// Times before 1601 become 0; times past year 60056 saturate.
    fn from(time: DateTime<Utc>) -> Self {
        let seconds = i128::from(time.timestamp()) + 11_644_473_600;
        let ticks = seconds * 10_000_000 + i128::from(time.timestamp_subsec_nanos() / 100);
        Self(u64::try_from(ticks.max(0)).unwrap_or(u64::MAX))
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// Who logs on with NTLM: domain, user and password (the password never printed).
pub struct NtlmCredentials {
    /// The domain sent in DomainName and mixed into NTOWFv2 (may be empty).
    pub domain: String,
    /// The user sent in UserName (upper-cased for NTOWFv2).
    pub username: String,
    /// The password; only its MD4 hash is ever computed, nothing else leaves.
    pub password: SecretString,
}

impl NtlmCredentials {
    /// Credentials from their three parts, as given.
    pub fn new(
        domain: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
    ) -> Self {
        Self {
            domain: domain.into(),
            username: username.into(),
            password,
        }
    }

    /// Credentials from an account as people write it: `DOMAIN\user`, `user@domain` or `user`.
    ///
    /// `DOMAIN\user` (down-level logon name) splits at the first backslash into domain and
    /// user. `user@domain` (UPN) is kept whole as the user with an empty domain: that is what
    /// Windows' own NTLM client sends for a UPN, the domain controller resolves the suffix,
    /// and a UPN suffix is often not the NTLM domain, so splitting it breaks NTOWFv2 (requests-ntlm
    /// and Azure/go-ntlmssp do the same). A bare `user` has an empty domain.
    pub fn from_account(account: &str, password: SecretString) -> Self {
        match account.split_once('\\') {
            Some((domain, user)) => Self::new(domain, user, password),
            None => Self::new("", account, password),
        }
    }
}

impl fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtlmCredentials")
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// AV pairs
// ---------------------------------------------------------------------------------------------

/// One AV_PAIR of a TargetInfo list (\[MS-NLMP\] 2.2.2.1), MsvAvEOL excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvPair {
    /// MsvAvNbComputerName: the server's NetBIOS name.
    NbComputerName(String),
    /// MsvAvNbDomainName: the server's NetBIOS domain.
    NbDomainName(String),
    /// MsvAvDnsComputerName: the server's FQDN.
    DnsComputerName(String),
    /// MsvAvDnsDomainName: the domain's DNS name.
    DnsDomainName(String),
    /// MsvAvDnsTreeName: the forest's DNS name.
    DnsTreeName(String),
    /// MsvAvFlags: 0x1 account constrained, 0x2 MIC present, 0x4 SPN untrusted.
    Flags(u32),
    /// MsvAvTimestamp: the server's clock; when present the client uses it in its blob.
    Timestamp(FileTime),
    /// MsvAvTargetName: the SPN the client meant to reach.
    TargetName(String),
    /// MsvAvChannelBindings: MD5 of the gss_channel_bindings_struct (Extended Protection).
    ChannelBindings([u8; 16]),
    /// Any other pair (MsvAvSingleHost, future ids), kept byte for byte.
    Other {
        /// AvId.
        id: u16,
        /// Value bytes.
        value: Vec<u8>,
    },
}

impl AvPair {
    /// Reads one pair's value, checking the lengths of fixed-size pairs.
    fn decode(id: u16, value: &[u8], field: MessageField) -> Result<Self, NtlmError> {
        let fixed = |expected: usize| -> Result<&[u8], NtlmError> {
            if value.len() == expected {
                Ok(value)
            } else {
                Err(NtlmError::AvPairBadLength {
                    field,
                    av_id: id,
                    len: u16::try_from(value.len()).unwrap_or(u16::MAX),
                    expected: u16::try_from(expected).unwrap_or(u16::MAX),
                })
            }
        };
        Ok(match id {
            AV_NB_COMPUTER_NAME => Self::NbComputerName(decode_utf16le(value, field)?),
            AV_NB_DOMAIN_NAME => Self::NbDomainName(decode_utf16le(value, field)?),
            AV_DNS_COMPUTER_NAME => Self::DnsComputerName(decode_utf16le(value, field)?),
            AV_DNS_DOMAIN_NAME => Self::DnsDomainName(decode_utf16le(value, field)?),
            AV_DNS_TREE_NAME => Self::DnsTreeName(decode_utf16le(value, field)?),
            AV_TARGET_NAME => Self::TargetName(decode_utf16le(value, field)?),
            AV_FLAGS => Self::Flags(u32::from_le_bytes(array(fixed(4)?)?)),
            AV_TIMESTAMP => Self::Timestamp(FileTime(u64::from_le_bytes(array(fixed(8)?)?))),
            AV_CHANNEL_BINDINGS => Self::ChannelBindings(array(fixed(16)?)?),
            _ => Self::Other {
                id,
                value: value.to_vec(),
            },
        })
    }

    /// The pair's AvId and value bytes as sent.
    fn encode(&self) -> (u16, Vec<u8>) {
        match self {
            Self::NbComputerName(s) => (AV_NB_COMPUTER_NAME, utf16le(s)),
            Self::NbDomainName(s) => (AV_NB_DOMAIN_NAME, utf16le(s)),
            Self::DnsComputerName(s) => (AV_DNS_COMPUTER_NAME, utf16le(s)),
            Self::DnsDomainName(s) => (AV_DNS_DOMAIN_NAME, utf16le(s)),
            Self::DnsTreeName(s) => (AV_DNS_TREE_NAME, utf16le(s)),
            Self::TargetName(s) => (AV_TARGET_NAME, utf16le(s)),
            Self::Flags(v) => (AV_FLAGS, v.to_le_bytes().to_vec()),
            Self::Timestamp(t) => (AV_TIMESTAMP, t.0.to_le_bytes().to_vec()),
            Self::ChannelBindings(h) => (AV_CHANNEL_BINDINGS, h.to_vec()),
            Self::Other { id, value } => (*id, value.clone()),
        }
    }
}

/// A list of AV pairs: the server's TargetInfo, or what the client echoes in its blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetInfo {
    pairs: Vec<AvPair>,
}

impl TargetInfo {
    /// A list of the given pairs (MsvAvEOL is added when encoding).
    pub fn from_pairs(pairs: Vec<AvPair>) -> Self {
        Self { pairs }
    }

    /// The pairs in wire order, MsvAvEOL excluded.
    pub fn pairs(&self) -> &[AvPair] {
        &self.pairs
    }

    /// MsvAvTimestamp, if the server sent one.
    pub fn timestamp(&self) -> Option<FileTime> {
        self.pairs.iter().find_map(|p| match p {
            AvPair::Timestamp(t) => Some(*t),
            _ => None,
        })
    }

    /// MsvAvNbDomainName, if present.
    pub fn nb_domain_name(&self) -> Option<&str> {
        self.pairs.iter().find_map(|p| match p {
            AvPair::NbDomainName(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// MsvAvNbComputerName, if present.
    pub fn nb_computer_name(&self) -> Option<&str> {
        self.pairs.iter().find_map(|p| match p {
            AvPair::NbComputerName(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// MsvAvDnsComputerName, if present.
    pub fn dns_computer_name(&self) -> Option<&str> {
        self.pairs.iter().find_map(|p| match p {
            AvPair::DnsComputerName(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// MsvAvChannelBindings, if present.
    pub fn channel_bindings(&self) -> Option<[u8; 16]> {
        self.pairs.iter().find_map(|p| match p {
            AvPair::ChannelBindings(h) => Some(*h),
            _ => None,
        })
    }

    /// Parses an AV pair list; it must end with MsvAvEOL (bytes after it are ignored).
    fn parse(bytes: &[u8], field: MessageField) -> Result<Self, NtlmError> {
        let mut pairs = Vec::new();
        let mut at = 0usize;
        loop {
            let Some(header) = bytes.get(at..at.saturating_add(4)) else {
                return Err(if at >= bytes.len() {
                    NtlmError::AvPairsUnterminated { field }
                } else {
                    NtlmError::AvPairTruncated { field, at }
                });
            };
            let [i0, i1, l0, l1] = array(header)?;
            let id = u16::from_le_bytes([i0, i1]);
            let len = usize::from(u16::from_le_bytes([l0, l1]));
            let start = at + 4;
            let value = bytes
                .get(start..start + len)
                .ok_or(NtlmError::AvPairTruncated { field, at })?;
            if id == AV_EOL {
                return Ok(Self { pairs });
            }
            pairs.push(AvPair::decode(id, value, field)?);
            at = start + len;
        }
    }

    /// The list on the wire, MsvAvEOL included; every value must fit 16 bits.
    pub fn to_bytes(&self) -> Result<Vec<u8>, NtlmError> {
        let mut out = Vec::new();
        for pair in &self.pairs {
            let (id, value) = pair.encode();
            let len = u16::try_from(value.len()).map_err(|_| NtlmError::FieldTooLong {
                field: MessageField::TargetInfo,
                len: value.len(),
            })?;
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&value);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        Ok(out)
    }
}

/// Channel binding token of Extended Protection for Authentication: ties the NTLM exchange
/// to the TLS connection it runs in, as Exchange with Extended Protection requires.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChannelBindings {
    hash: [u8; 16],
}

impl ChannelBindings {
    /// Binding for `tls-server-end-point` (RFC 5929): `cert_digest` is the hash of the
    /// server's leaf certificate (DER) with its signature's hash algorithm, SHA-256 for
    /// MD5- or SHA-1-signed certificates.
    pub fn tls_server_end_point(cert_digest: &[u8]) -> Self {
        let mut data = b"tls-server-end-point:".to_vec();
        data.extend_from_slice(cert_digest);
        Self::from_application_data(&data)
    }

    /// Binding from raw application data: MD5 of a gss_channel_bindings_struct with no
    /// addresses (\[MS-NLMP\] 3.1.5.1.2, RFC 2744 layout, lengths little-endian).
    pub fn from_application_data(application_data: &[u8]) -> Self {
        let mut md5 = Md5::new();
        md5.update([0u8; 16]); // initiator and acceptor address types and lengths: none
        md5.update(
            u32::try_from(application_data.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        md5.update(application_data);
        Self {
            hash: md5.finalize().into(),
        }
    }

    /// The 16-byte value of MsvAvChannelBindings.
    pub fn hash(&self) -> [u8; 16] {
        self.hash
    }
}

impl fmt::Debug for ChannelBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelBindings({})", hex(&self.hash))
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// The NEGOTIATE_MESSAGE (type 1) that opens the handshake, with [`CLIENT_FLAGS`] and no
/// domain or workstation (both empty; the AUTHENTICATE carries the real ones).
pub fn negotiate_message() -> Vec<u8> {
    let mut w = MessageWriter::new(TYPE_NEGOTIATE, NEGOTIATE_HEADER_LEN);
    w.bytes(&CLIENT_FLAGS.bits().to_le_bytes());
    w.field(&[]); // DomainNameFields
    w.field(&[]); // WorkstationFields
    w.finish()
}

/// A parsed CHALLENGE_MESSAGE (type 2): what the client needs to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The server's NegotiateFlags.
    pub flags: NegotiateFlags,
    /// The 8-byte nonce the NTLMv2 response is computed over.
    pub server_challenge: [u8; 8],
    /// TargetName (the server's domain or name), empty if absent.
    pub target_name: String,
    /// TargetInfo: the AV pairs the client echoes in its blob.
    pub target_info: TargetInfo,
}

/// Parses a CHALLENGE_MESSAGE and checks that it can be answered with NTLMv2.
///
/// Errors on malformed bytes, and with [`NtlmError::Unsupported`] when the server does not
/// agree to Unicode, offers LM only, or sends no TargetInfo (no NTLMv2 possible).
pub fn parse_challenge(bytes: &[u8]) -> Result<Challenge, NtlmError> {
    check_header(bytes, TYPE_CHALLENGE, CHALLENGE_MIN_LEN)?;
    let flags = NegotiateFlags(read_u32(bytes, 20)?);
    check_ntlmv2_possible(flags)?;
    let server_challenge: [u8; 8] = array(bytes.get(24..32).unwrap_or_default())?;
    let target_name = decode_utf16le(
        read_field(bytes, 12, MessageField::TargetName)?,
        MessageField::TargetName,
    )?;
    let info_bytes = if bytes.len() >= CHALLENGE_HEADER_LEN {
        read_field(bytes, 40, MessageField::TargetInfo)?
    } else {
        &[]
    };
    if info_bytes.is_empty() {
        return Err(NtlmError::Unsupported(Unsupported::NoTargetInfo));
    }
    let target_info = TargetInfo::parse(info_bytes, MessageField::TargetInfo)?;
    Ok(Challenge {
        flags,
        server_challenge,
        target_name,
        target_info,
    })
}

/// Choices for the AUTHENTICATE_MESSAGE beyond the credentials.
#[derive(Debug, Clone, Default)]
pub struct AuthenticateOptions {
    /// Workstation name sent to the server (empty by default: nothing identifies the host).
    pub workstation: String,
    /// Channel binding token for Extended Protection; `None` sends none.
    pub channel_bindings: Option<ChannelBindings>,
}

/// The AUTHENTICATE_MESSAGE (type 3) answering `challenge`, NTLMv2 only, empty workstation.
///
/// `client_challenge` must be random per message and `timestamp` the current time; the
/// server's MsvAvTimestamp replaces `timestamp` when present (and the LM response is then
/// Z(24)). Use [`authenticate_message_now`] outside tests.
pub fn authenticate_message(
    creds: &NtlmCredentials,
    challenge: &Challenge,
    client_challenge: [u8; 8],
    timestamp: impl Into<FileTime>,
) -> Result<Vec<u8>, NtlmError> {
    authenticate_message_with(
        creds,
        challenge,
        &AuthenticateOptions::default(),
        client_challenge,
        timestamp,
    )
}

/// [`authenticate_message`] with a random client challenge and the current time.
pub fn authenticate_message_now(
    creds: &NtlmCredentials,
    challenge: &Challenge,
    options: &AuthenticateOptions,
) -> Result<Vec<u8>, NtlmError> {
    let mut client_challenge = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut client_challenge);
    authenticate_message_with(creds, challenge, options, client_challenge, FileTime::now())
}

/// [`authenticate_message`] with a workstation name and/or channel bindings.
///
/// Follows \[MS-NLMP\] 3.1.5.1.2 and 3.3.2: the blob echoes the server's AV pairs (plus
/// MsvAvChannelBindings when given); LmChallengeResponse is the LMv2 response, or Z(24) when
/// the server sent MsvAvTimestamp. No MIC is sent (it is optional, needs the exact NEGOTIATE
/// and CHALLENGE bytes, and servers accept its absence when MsvAvFlags does not claim one).
pub fn authenticate_message_with(
    creds: &NtlmCredentials,
    challenge: &Challenge,
    options: &AuthenticateOptions,
    client_challenge: [u8; 8],
    timestamp: impl Into<FileTime>,
) -> Result<Vec<u8>, NtlmError> {
    check_ntlmv2_possible(challenge.flags)?;
    if creds.username.is_empty() {
        return Err(NtlmError::EmptyUserName);
    }
    let server_time = challenge.target_info.timestamp();
    let time = server_time.unwrap_or(timestamp.into());

    let mut pairs: Vec<AvPair> = challenge
        .target_info
        .pairs()
        .iter()
        .filter(|p| !matches!(p, AvPair::ChannelBindings(_)))
        .cloned()
        .collect();
    if let Some(cb) = options.channel_bindings {
        pairs.push(AvPair::ChannelBindings(cb.hash()));
    }
    let av_pairs = TargetInfo::from_pairs(pairs).to_bytes()?;

    let key = nt_owf_v2(&creds.password, &creds.username, &creds.domain);
    let blob = client_blob(&client_challenge, time, &av_pairs);
    let proof = nt_proof_str(&key, &challenge.server_challenge, &blob);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&blob);
    let lm_response = if server_time.is_some() {
        vec![0u8; 24]
    } else {
        lmv2_response(&key, &challenge.server_challenge, &client_challenge).to_vec()
    };

    let domain = utf16le(&creds.domain);
    let user = utf16le(&creds.username);
    let workstation = utf16le(&options.workstation);
    for (field, data) in [
        (MessageField::NtChallengeResponse, &nt_response),
        (MessageField::DomainName, &domain),
        (MessageField::UserName, &user),
        (MessageField::Workstation, &workstation),
    ] {
        if data.len() > usize::from(u16::MAX) {
            return Err(NtlmError::FieldTooLong {
                field,
                len: data.len(),
            });
        }
    }

    let flags = challenge.flags & CLIENT_FLAGS;
    let mut w = MessageWriter::new(TYPE_AUTHENTICATE, AUTHENTICATE_HEADER_LEN);
    w.field(&lm_response);
    w.field(&nt_response);
    w.field(&domain);
    w.field(&user);
    w.field(&workstation);
    w.field(&[]); // EncryptedRandomSessionKey: no key exchange
    w.bytes(&flags.bits().to_le_bytes());
    Ok(w.finish())
}

/// Refuses flag sets that rule out NTLMv2 with UTF-16 strings.
fn check_ntlmv2_possible(flags: NegotiateFlags) -> Result<(), NtlmError> {
    if !flags.contains(NegotiateFlags::UNICODE) {
        return Err(NtlmError::Unsupported(Unsupported::UnicodeNotNegotiated));
    }
    if !flags.contains(NegotiateFlags::NTLM) {
        return Err(NtlmError::Unsupported(Unsupported::LmOnly));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Server side (the fake Exchange)
// ---------------------------------------------------------------------------------------------

/// A parsed NEGOTIATE_MESSAGE (type 1), as the fake server receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiate {
    /// The client's requested NegotiateFlags.
    pub flags: NegotiateFlags,
}

/// Parses a NEGOTIATE_MESSAGE (its OEM domain and workstation are ignored, as servers do).
pub fn parse_negotiate(bytes: &[u8]) -> Result<Negotiate, NtlmError> {
    check_header(bytes, TYPE_NEGOTIATE, NEGOTIATE_HEADER_LEN)?;
    Ok(Negotiate {
        flags: NegotiateFlags(read_u32(bytes, 12)?),
    })
}

/// A fresh random 8-byte server challenge, one per handshake.
pub fn random_server_challenge() -> [u8; 8] {
    let mut challenge = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut challenge);
    challenge
}

/// The CHALLENGE_MESSAGE (type 2) the fake server sends, with [`SERVER_FLAGS`].
///
/// TargetName and the AV pairs MsvAvNbDomainName and MsvAvNbComputerName all carry
/// `target_name` (cut to 255 UTF-16 units), followed by MsvAvTimestamp = `timestamp`.
pub fn challenge_message(
    server_challenge: [u8; 8],
    target_name: &str,
    timestamp: impl Into<FileTime>,
) -> Vec<u8> {
    let name: String = cap_utf16(target_name, MAX_TARGET_NAME_UNITS);
    let info = TargetInfo::from_pairs(vec![
        AvPair::NbDomainName(name.clone()),
        AvPair::NbComputerName(name.clone()),
        AvPair::Timestamp(timestamp.into()),
    ]);
    // Each value is at most 510 bytes, so encoding cannot exceed a 16-bit length.
    let info_bytes = info.to_bytes().unwrap_or_default();
    let mut w = MessageWriter::new(TYPE_CHALLENGE, CHALLENGE_HEADER_LEN);
    w.field(&utf16le(&name));
    w.bytes(&SERVER_FLAGS.bits().to_le_bytes());
    w.bytes(&server_challenge);
    w.bytes(&[0u8; 8]); // Reserved
    w.field(&info_bytes);
    w.finish()
}

/// A parsed AUTHENTICATE_MESSAGE (type 3): who the client claims to be and its proof.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The client's NegotiateFlags.
    pub flags: NegotiateFlags,
    /// LmChallengeResponse (LMv2, or Z(24)); not used for verification.
    pub lm_response: Vec<u8>,
    /// NtChallengeResponse: NTProofStr followed by the client blob.
    pub nt_response: Vec<u8>,
    /// The claimed domain.
    pub domain: String,
    /// The claimed user.
    pub user: String,
    /// The client's workstation name (may be empty).
    pub workstation: String,
    /// EncryptedRandomSessionKey (empty unless key exchange was negotiated).
    pub encrypted_session_key: Vec<u8>,
}

impl Authenticate {
    /// The AV pairs the client echoed in its NTLMv2 blob, if the response is NTLMv2-shaped.
    pub fn client_av_pairs(&self) -> Result<TargetInfo, NtlmError> {
        let pairs = self
            .nt_response
            .get(NT_PROOF_LEN + BLOB_HEADER_LEN..)
            .ok_or(NtlmError::Truncated {
                need: NT_PROOF_LEN + BLOB_HEADER_LEN,
                len: self.nt_response.len(),
            })?;
        TargetInfo::parse(pairs, MessageField::ClientAvPairs)
    }
}

impl fmt::Debug for Authenticate {
    /// Shows who and from where, never the responses (they can be cracked offline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticate")
            .field("flags", &self.flags)
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("workstation", &self.workstation)
            .field("lm_response_len", &self.lm_response.len())
            .field("nt_response_len", &self.nt_response.len())
            .finish_non_exhaustive()
    }
}

/// Parses an AUTHENTICATE_MESSAGE; strings must be UTF-16 (Unicode negotiated).
pub fn parse_authenticate(bytes: &[u8]) -> Result<Authenticate, NtlmError> {
    check_header(bytes, TYPE_AUTHENTICATE, AUTHENTICATE_HEADER_LEN)?;
    let flags = NegotiateFlags(read_u32(bytes, 60)?);
    if !flags.contains(NegotiateFlags::UNICODE) {
        return Err(NtlmError::Unsupported(Unsupported::UnicodeNotNegotiated));
    }
    let string = |at: usize, field: MessageField| -> Result<String, NtlmError> {
        decode_utf16le(read_field(bytes, at, field)?, field)
    };
    Ok(Authenticate {
        flags,
        lm_response: read_field(bytes, 12, MessageField::LmChallengeResponse)?.to_vec(),
        nt_response: read_field(bytes, 20, MessageField::NtChallengeResponse)?.to_vec(),
        domain: string(28, MessageField::DomainName)?,
        user: string(36, MessageField::UserName)?,
        workstation: string(44, MessageField::Workstation)?,
        encrypted_session_key: read_field(bytes, 52, MessageField::EncryptedRandomSessionKey)?
            .to_vec(),
    })
}

/// Whether `authenticate` proves knowledge of `password` for the user and domain it claims,
/// against the `server_challenge` this connection sent (\[MS-NLMP\] 3.2.5.1.2, NTLMv2 only).
///
/// Recomputes NTOWFv2 from the claimed user and domain and compares NTProofStr in constant
/// time. An NTLMv1 (24-byte) or anonymous response never verifies; the LM response is not
/// looked at. Time skew of the blob's timestamp is not checked.
pub fn verify_ntlmv2(
    authenticate: &Authenticate,
    server_challenge: [u8; 8],
    password: &SecretString,
) -> bool {
    if authenticate.user.is_empty() {
        return false;
    }
    let Some((proof, blob)) = authenticate.nt_response.split_at_checked(NT_PROOF_LEN) else {
        return false;
    };
    // RespType and HiRespType MUST be 1 (2.2.2.7).
    if blob.len() < BLOB_HEADER_LEN || blob.get(..2) != Some(&[1, 1][..]) {
        return false;
    }
    let key = nt_owf_v2(password, &authenticate.user, &authenticate.domain);
    let expected = nt_proof_str(&key, &server_challenge, blob);
    constant_time_eq(&expected, proof)
}

// ---------------------------------------------------------------------------------------------
// Header framing
// ---------------------------------------------------------------------------------------------

/// `NTLM <base64>`: an `Authorization` value from the client, or a `WWW-Authenticate` value
/// from the server.
pub fn to_header(message: &[u8]) -> String {
    format!("NTLM {}", STANDARD.encode(message))
}

/// `Negotiate <base64>`: a raw NTLM token under the Negotiate scheme, for servers that
/// offer only Negotiate (Windows accepts raw NTLMSSP there).
pub fn to_negotiate_header(message: &[u8]) -> String {
    format!("Negotiate {}", STANDARD.encode(message))
}

/// The NTLM message in a `WWW-Authenticate` value, if any: `NTLM <base64>`, or a raw NTLM
/// token under `Negotiate <base64>` (SPNEGO/Kerberos tokens are skipped).
///
/// Accepts comma-joined challenge lists (`Negotiate, NTLM TlRM…`); call it for each header
/// value (see [`find_www_authenticate`]). Tokens longer than a real message are ignored.
pub fn from_www_authenticate(value: &str) -> Option<Vec<u8>> {
    value.split(',').find_map(token_in_challenge)
}

/// [`from_www_authenticate`] over every `WWW-Authenticate` value of a response.
pub fn find_www_authenticate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Vec<u8>> {
    values.into_iter().find_map(from_www_authenticate)
}

/// The NTLM message in an `Authorization` value (`NTLM …` or `Negotiate …`), for the fake
/// server.
pub fn from_authorization(value: &str) -> Option<Vec<u8>> {
    token_in_challenge(value)
}

/// Whether a `WWW-Authenticate` value offers the `NTLM` scheme (bare or with a token).
pub fn offers_ntlm(value: &str) -> bool {
    value.split(',').any(|part| {
        part.split_whitespace()
            .next()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("NTLM"))
    })
}

/// The NTLM token of one `scheme token` item, if it is one.
fn token_in_challenge(item: &str) -> Option<Vec<u8>> {
    let (scheme, token) = item.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    if !(scheme.eq_ignore_ascii_case("NTLM") || scheme.eq_ignore_ascii_case("Negotiate")) {
        return None;
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_B64_LEN {
        return None;
    }
    let bytes = B64_LENIENT.decode(token).ok()?;
    bytes.starts_with(SIGNATURE).then_some(bytes)
}

// ---------------------------------------------------------------------------------------------
// NTLMv2 cryptography (\[MS-NLMP\] 3.3.2)
// ---------------------------------------------------------------------------------------------

/// HMAC-MD5 keyed with a 16-byte key over the concatenation of `parts`.
fn hmac_md5(key: &[u8; 16], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC pads keys shorter than the 64-byte MD5 block with zeros, so this fixed-size key is
    // the same key, and needs no fallible constructor.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..16].copy_from_slice(key);
    let mut mac = <HmacMd5 as KeyInit>::new(&(*block).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 = HMAC_MD5(MD4(UTF-16LE(password)), UTF-16LE(Uppercase(user) ‖ domain)): the
/// NTLMv2 response key (ResponseKeyNT, equal to ResponseKeyLM).
fn nt_owf_v2(password: &SecretString, user: &str, domain: &str) -> Zeroizing<[u8; 16]> {
    let password_utf16 = Zeroizing::new(utf16le(password.expose_secret()));
    let nt_hash = Zeroizing::new(<[u8; 16]>::from(Md4::digest(password_utf16.as_slice())));
    let mut identity = utf16le(&upper_case_like_windows(user));
    identity.extend_from_slice(&utf16le(domain));
    Zeroizing::new(hmac_md5(&nt_hash, &[&identity]))
}

/// Windows upper-cases user names one character at a time (RtlUpcaseUnicodeChar): a
/// character whose upper case is several characters (`ß`) stays as it is.
fn upper_case_like_windows(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// The NTLMv2 client blob, `temp` of 3.3.2: version 1/1, Z(6), time, client challenge,
/// Z(4), AV pairs (with their MsvAvEOL), Z(4).
fn client_blob(client_challenge: &[u8; 8], time: FileTime, av_pairs: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(BLOB_HEADER_LEN + av_pairs.len() + 4);
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(&time.0.to_le_bytes());
    blob.extend_from_slice(client_challenge);
    blob.extend_from_slice(&[0, 0, 0, 0]);
    blob.extend_from_slice(av_pairs);
    blob.extend_from_slice(&[0, 0, 0, 0]);
    blob
}

/// NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge ‖ temp).
fn nt_proof_str(key: &[u8; 16], server_challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(key, &[server_challenge, blob])
}

/// LMv2 response = HMAC_MD5(ResponseKeyLM, ServerChallenge ‖ ClientChallenge) ‖ ClientChallenge.
fn lmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> [u8; 24] {
    let mac = hmac_md5(key, &[server_challenge, client_challenge]);
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&mac);
    out[16..].copy_from_slice(client_challenge);
    out
}

/// SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr); unused over HTTP, kept for the
/// 4.2.4 test vector and for signing should it ever be needed.
#[cfg_attr(not(test), allow(dead_code))]
fn session_base_key(key: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(key, &[nt_proof])
}

/// Equality of a 16-byte secret-derived value without an early exit on the first difference.
fn constant_time_eq(expected: &[u8; 16], actual: &[u8]) -> bool {
    if actual.len() != expected.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(actual)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

// ---------------------------------------------------------------------------------------------
// Wire helpers
// ---------------------------------------------------------------------------------------------

/// Builds a message: a fixed header of security buffers and raw fields, then the payload the
/// buffers point into, in the order they were added.
struct MessageWriter {
    header: Vec<u8>,
    payload: Vec<u8>,
    header_len: usize,
}

impl MessageWriter {
    /// Starts a message of `message_type` whose fixed header is `header_len` bytes.
    fn new(message_type: u32, header_len: usize) -> Self {
        let mut header = Vec::with_capacity(header_len);
        header.extend_from_slice(SIGNATURE);
        header.extend_from_slice(&message_type.to_le_bytes());
        Self {
            header,
            payload: Vec::new(),
            header_len,
        }
    }

    /// Appends raw header bytes.
    fn bytes(&mut self, bytes: &[u8]) {
        self.header.extend_from_slice(bytes);
    }

    /// Appends a security buffer (length, max length, offset) and its data. Callers check
    /// lengths first; anything beyond 65535 bytes would be cut, never mis-described.
    fn field(&mut self, data: &[u8]) {
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        let data = data.get(..usize::from(len)).unwrap_or(data);
        let offset = u32::try_from(self.header_len + self.payload.len()).unwrap_or(u32::MAX);
        self.header.extend_from_slice(&len.to_le_bytes());
        self.header.extend_from_slice(&len.to_le_bytes());
        self.header.extend_from_slice(&offset.to_le_bytes());
        self.payload.extend_from_slice(data);
    }

    /// The finished message.
    fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(self.header.len(), self.header_len);
        self.header.append(&mut self.payload);
        self.header
    }
}

/// Checks size limits, signature and message type.
fn check_header(bytes: &[u8], expected: u32, min_len: usize) -> Result<(), NtlmError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(NtlmError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    if bytes.len() < min_len {
        // A short prefix that is not even the signature is reported as such.
        if !SIGNATURE.starts_with(bytes.get(..bytes.len().min(8)).unwrap_or_default()) {
            return Err(NtlmError::BadSignature);
        }
        return Err(NtlmError::Truncated {
            need: min_len,
            len: bytes.len(),
        });
    }
    if !bytes.starts_with(SIGNATURE) {
        return Err(NtlmError::BadSignature);
    }
    let found = read_u32(bytes, 8)?;
    if found != expected {
        return Err(NtlmError::WrongMessageType { expected, found });
    }
    Ok(())
}

/// Little-endian u32 at `at`; the header length was checked before.
fn read_u32(bytes: &[u8], at: usize) -> Result<u32, NtlmError> {
    let raw = bytes.get(at..at + 4).ok_or(NtlmError::Truncated {
        need: at + 4,
        len: bytes.len(),
    })?;
    Ok(u32::from_le_bytes(array(raw)?))
}

/// The bytes a security buffer at header position `at` points to (its MaxLen is ignored;
/// an empty buffer's offset is not checked, as Windows does).
fn read_field(bytes: &[u8], at: usize, field: MessageField) -> Result<&[u8], NtlmError> {
    let raw: [u8; 8] = array(bytes.get(at..at + 8).ok_or(NtlmError::Truncated {
        need: at + 8,
        len: bytes.len(),
    })?)?;
    let [l0, l1, _, _, o0, o1, o2, o3] = raw;
    let len = u16::from_le_bytes([l0, l1]);
    let offset = u32::from_le_bytes([o0, o1, o2, o3]);
    if len == 0 {
        return Ok(&[]);
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    start
        .checked_add(usize::from(len))
        .and_then(|end| bytes.get(start..end))
        .ok_or(NtlmError::FieldOutOfBounds {
            field,
            offset,
            len,
            message_len: bytes.len(),
        })
}

/// A fixed-size array from a slice whose length the caller has already established.
fn array<const N: usize>(slice: &[u8]) -> Result<[u8; N], NtlmError> {
    <[u8; N]>::try_from(slice).map_err(|_| NtlmError::Truncated {
        need: N,
        len: slice.len(),
    })
}

/// UTF-16LE bytes of a string.
fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A string from UTF-16LE bytes; odd lengths and unpaired surrogates are errors.
fn decode_utf16le(bytes: &[u8], field: MessageField) -> Result<String, NtlmError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(NtlmError::NotUtf16 { field });
    }
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| NtlmError::NotUtf16 { field })
}

/// The longest prefix of `s` (whole characters) that fits `max_units` UTF-16 code units.
fn cap_utf16(s: &str, max_units: usize) -> String {
    let mut units = 0;
    s.chars()
        .take_while(|c| {
            units += c.len_utf16();
            units <= max_units
        })
        .collect()
}

/// Lower-case hex, for Debug output of non-secret digests.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    // Inputs of [MS-NLMP] 4.2.1 "Common Values", used by the NTLMv2 examples of 4.2.4
    // (learn.microsoft.com/en-us/openspecs/windows_protocols/ms-nlmp/125f7a94-933e-4023-a146-a449e49bf774).
    const USER: &str = "User";
    const DOMAIN: &str = "Domain";
    const PASSWORD: &str = "Password";
    const WORKSTATION: &str = "COMPUTER";
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    /// CHALLENGE_MESSAGE of [MS-NLMP] 4.2.4.3 (flags 0xe28a8233, TargetName "Server",
    /// TargetInfo MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", no timestamp).
    const SPEC_CHALLENGE_V2: &str = concat!(
        "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef",
        "00000000000000002400240044000000060070170000000f5300650072007600",
        "6500720002000c0044006f006d00610069006e0001000c005300650072007600",
        "6500720000000000",
    );

    /// AUTHENTICATE_MESSAGE of [MS-NLMP] 4.2.4.3 (client challenge aa…aa, time 0,
    /// workstation "COMPUTER", key exchange with session key 55…55).
    const SPEC_AUTHENTICATE_V2: &str = concat!(
        "4e544c4d5353500003000000180018006c00000054005400840000000c000c00",
        "480000000800080054000000100010005c00000010001000d8000000358288e2",
        "0501280a0000000f44006f006d00610069006e00550073006500720043004f00",
        "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa",
        "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000",
        "00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00",
        "01000c005300650072007600650072000000000000000000c5dad2544fc97990",
        "94ce1ce90bc9d03e",
    );

    /// CHALLENGE_MESSAGE of the NTLMv1 examples ([MS-NLMP] 4.2.2.3): no TargetInfo.
    const SPEC_CHALLENGE_V1: &str = concat!(
        "4e544c4d53535000020000000c000c003800000033820a820123456789abcdef",
        "00000000000000000000000000000000060070170000000f5300650072007600",
        "65007200",
    );

    /// ResponseKeyNT = NTOWFv2("Password", "User", "Domain"), [MS-NLMP] 4.2.4.1.1.
    const SPEC_RESPONSE_KEY_NT: &str = "0c868a403bfd7a93a3001ef22ef02e3f";
    /// SessionBaseKey, [MS-NLMP] 4.2.4.1.2.
    const SPEC_SESSION_BASE_KEY: &str = "8de40ccadbc14a82f15cb0ad0de95ca3";
    /// temp, [MS-NLMP] 4.2.4.1.3.
    const SPEC_TEMP: &str = concat!(
        "01010000000000000000000000000000aaaaaaaaaaaaaaaa0000000002000c00",
        "44006f006d00610069006e0001000c0053006500720076006500720000000000",
        "00000000",
    );
    /// LMv2 response, [MS-NLMP] 4.2.4.2.1.
    const SPEC_LMV2_RESPONSE: &str = "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa";
    /// NTProofStr, [MS-NLMP] 4.2.4.2.2.
    const SPEC_NT_PROOF_STR: &str = "68cd0ab851e51c96aabc927bebef6a1c";

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn spec_creds() -> NtlmCredentials {
        NtlmCredentials::new(DOMAIN, USER, secret(PASSWORD))
    }

    fn spec_target_info_bytes() -> Vec<u8> {
        unhex("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000")
    }

    fn spec_authenticate_from_our_client() -> Vec<u8> {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("spec challenge");
        let options = AuthenticateOptions {
            workstation: WORKSTATION.to_owned(),
            channel_bindings: None,
        };
        authenticate_message_with(
            &spec_creds(),
            &challenge,
            &options,
            CLIENT_CHALLENGE,
            FileTime(0),
        )
        .expect("authenticate")
    }

    /// A full handshake against the fake server side; returns the server's view.
    fn handshake(creds: &NtlmCredentials, server_challenge: [u8; 8]) -> Authenticate {
        let negotiate = parse_negotiate(&negotiate_message()).expect("negotiate");
        assert!(negotiate.flags.contains(NegotiateFlags::NTLM));
        let challenge_bytes = challenge_message(server_challenge, "EXSYNCFAKE", FileTime::now());
        let challenge = parse_challenge(&challenge_bytes).expect("challenge");
        let authenticate =
            authenticate_message_now(creds, &challenge, &AuthenticateOptions::default())
                .expect("authenticate");
        parse_authenticate(&authenticate).expect("parse authenticate")
    }

    // ---- [MS-NLMP] 4.2.4 NTLMv2 test vectors -------------------------------------------

    #[test]
    fn ntowfv2_of_spec_credentials_is_the_response_key_nt_of_4_2_4_1_1() {
        let key = nt_owf_v2(&secret(PASSWORD), USER, DOMAIN);
        assert_eq!(hex(&*key), SPEC_RESPONSE_KEY_NT);
    }

    #[test]
    fn client_blob_of_spec_inputs_is_the_temp_of_4_2_4_1_3() {
        let blob = client_blob(&CLIENT_CHALLENGE, FileTime(0), &spec_target_info_bytes());
        assert_eq!(hex(&blob), SPEC_TEMP);
    }

    #[test]
    fn nt_proof_str_of_spec_inputs_matches_4_2_4_2_2() {
        let key = nt_owf_v2(&secret(PASSWORD), USER, DOMAIN);
        let proof = nt_proof_str(&key, &SERVER_CHALLENGE, &unhex(SPEC_TEMP));
        assert_eq!(hex(&proof), SPEC_NT_PROOF_STR);
    }

    #[test]
    fn session_base_key_of_spec_inputs_matches_4_2_4_1_2() {
        let key = nt_owf_v2(&secret(PASSWORD), USER, DOMAIN);
        let proof = nt_proof_str(&key, &SERVER_CHALLENGE, &unhex(SPEC_TEMP));
        assert_eq!(hex(&session_base_key(&key, &proof)), SPEC_SESSION_BASE_KEY);
    }

    #[test]
    fn lmv2_response_of_spec_inputs_matches_4_2_4_2_1() {
        let key = nt_owf_v2(&secret(PASSWORD), USER, DOMAIN);
        let lm = lmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE);
        assert_eq!(hex(&lm), SPEC_LMV2_RESPONSE);
    }

    #[test]
    fn spec_challenge_message_parses_to_its_fields() {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("parse");
        assert_eq!(challenge.flags.bits(), 0xe28a_8233);
        assert_eq!(challenge.server_challenge, SERVER_CHALLENGE);
        assert_eq!(challenge.target_name, "Server");
        assert_eq!(challenge.target_info.nb_domain_name(), Some("Domain"));
        assert_eq!(challenge.target_info.nb_computer_name(), Some("Server"));
        assert_eq!(challenge.target_info.timestamp(), None);
        assert_eq!(
            challenge.target_info.to_bytes().expect("encode"),
            spec_target_info_bytes()
        );
    }

    #[test]
    fn authenticate_for_spec_challenge_carries_the_spec_responses_and_names() {
        let ours = parse_authenticate(&spec_authenticate_from_our_client()).expect("ours");
        let spec = parse_authenticate(&unhex(SPEC_AUTHENTICATE_V2)).expect("spec");
        assert_eq!(hex(&ours.lm_response), SPEC_LMV2_RESPONSE);
        assert_eq!(hex(&ours.nt_response[..16]), SPEC_NT_PROOF_STR);
        assert_eq!(hex(&ours.nt_response[16..]), SPEC_TEMP);
        // Every deterministic field equals the spec's message; only key exchange differs.
        assert_eq!(ours.lm_response, spec.lm_response);
        assert_eq!(ours.nt_response, spec.nt_response);
        assert_eq!(ours.domain, spec.domain);
        assert_eq!(ours.user, spec.user);
        assert_eq!(ours.workstation, spec.workstation);
        assert_eq!((ours.domain.as_str(), ours.user.as_str()), (DOMAIN, USER));
        assert_eq!(ours.workstation, WORKSTATION);
        assert!(ours.encrypted_session_key.is_empty());
        assert_eq!(
            hex(&spec.encrypted_session_key),
            "c5dad2544fc9799094ce1ce90bc9d03e"
        );
    }

    #[test]
    fn authenticate_message_layout_is_header_then_domain_user_workstation_in_utf16() {
        let bytes = spec_authenticate_from_our_client();
        assert_eq!(&bytes[..8], SIGNATURE);
        assert_eq!(read_u32(&bytes, 8).expect("type"), TYPE_AUTHENTICATE);
        let domain = read_field(&bytes, 28, MessageField::DomainName).expect("domain");
        assert_eq!(hex(domain), "44006f006d00610069006e00");
        let user = read_field(&bytes, 36, MessageField::UserName).expect("user");
        assert_eq!(hex(user), "5500730065007200");
        let workstation = read_field(&bytes, 44, MessageField::Workstation).expect("ws");
        assert_eq!(hex(workstation), "43004f004d0050005500540045005200");
        // Negotiated flags: the server's offer intersected with ours, never LM/OEM/KEY_EXCH.
        assert_eq!(read_u32(&bytes, 60).expect("flags"), 0x2088_8201);
        assert_eq!(bytes.len(), AUTHENTICATE_HEADER_LEN + 24 + 84 + 12 + 8 + 16);
    }

    #[test]
    fn spec_authenticate_message_verifies_with_the_spec_password() {
        let spec = parse_authenticate(&unhex(SPEC_AUTHENTICATE_V2)).expect("spec");
        assert!(verify_ntlmv2(&spec, SERVER_CHALLENGE, &secret(PASSWORD)));
        assert!(!verify_ntlmv2(&spec, SERVER_CHALLENGE, &secret("password")));
    }

    #[test]
    fn channel_binding_hash_matches_the_published_tls_server_end_point_vector() {
        // Certificate hash and expected MsvAvChannelBindings from Microsoft's Open
        // Specifications blog "NTLM and Channel Binding Hash" (2013), as Chromium's
        // net/ntlm tests carry them.
        let cert_hash = unhex("ea05fefecc6b0bd571dbbc5baa3ed45386d0446835f7b74c85621b9983475f95");
        let cb = ChannelBindings::tls_server_end_point(&cert_hash);
        assert_eq!(hex(&cb.hash()), "6586e99d81c2fc984e47172fd4dd0310");
    }

    // ---- Flags and message shape --------------------------------------------------------

    #[test]
    fn negotiate_message_offers_ntlmv2_flags_and_never_lm_oem_or_key_exchange() {
        let bytes = negotiate_message();
        assert_eq!(bytes.len(), NEGOTIATE_HEADER_LEN);
        let flags = parse_negotiate(&bytes).expect("parse").flags;
        assert_eq!(flags.bits(), 0x2088_8205);
        for wanted in [
            NegotiateFlags::UNICODE,
            NegotiateFlags::REQUEST_TARGET,
            NegotiateFlags::NTLM,
            NegotiateFlags::ALWAYS_SIGN,
            NegotiateFlags::EXTENDED_SESSIONSECURITY,
            NegotiateFlags::TARGET_INFO,
            NegotiateFlags::NEGOTIATE_128,
        ] {
            assert!(flags.contains(wanted), "{wanted:?} missing");
        }
        for refused in [
            NegotiateFlags::OEM,
            NegotiateFlags::LM_KEY,
            NegotiateFlags::KEY_EXCH,
            NegotiateFlags::ANONYMOUS,
        ] {
            assert!(!flags.contains(refused), "{refused:?} offered");
        }
        // Domain and workstation fields are empty.
        assert_eq!(
            &bytes[16..32],
            &[0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0]
        );
    }

    #[test]
    fn challenge_message_announces_target_and_timestamp_in_av_pairs() {
        let bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(42));
        let challenge = parse_challenge(&bytes).expect("parse");
        assert_eq!(challenge.flags, SERVER_FLAGS);
        assert_eq!(challenge.server_challenge, SERVER_CHALLENGE);
        assert_eq!(challenge.target_name, "CORP");
        assert_eq!(challenge.target_info.nb_domain_name(), Some("CORP"));
        assert_eq!(challenge.target_info.nb_computer_name(), Some("CORP"));
        assert_eq!(challenge.target_info.timestamp(), Some(FileTime(42)));
    }

    #[test]
    fn challenge_message_cuts_an_overlong_target_name_instead_of_failing() {
        let name = "é".repeat(10_000);
        let challenge = parse_challenge(&challenge_message(SERVER_CHALLENGE, &name, FileTime(1)))
            .expect("parse");
        assert_eq!(challenge.target_name.chars().count(), MAX_TARGET_NAME_UNITS);
    }

    // ---- Client behaviour -----------------------------------------------------------------

    #[test]
    fn server_timestamp_replaces_client_time_and_zeroes_the_lm_response() {
        let server_time = FileTime(0x01d2_d400_fdc8_0b80);
        let bytes = challenge_message(SERVER_CHALLENGE, "CORP", server_time);
        let challenge = parse_challenge(&bytes).expect("parse");
        let msg = authenticate_message(&spec_creds(), &challenge, CLIENT_CHALLENGE, FileTime(7))
            .expect("authenticate");
        let auth = parse_authenticate(&msg).expect("parse");
        assert_eq!(auth.lm_response, vec![0u8; 24]);
        let blob_time = u64::from_le_bytes(auth.nt_response[24..32].try_into().expect("8"));
        assert_eq!(FileTime(blob_time), server_time);
        assert!(verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
    }

    #[test]
    fn without_server_timestamp_the_client_time_goes_into_the_blob() {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("parse");
        let now = Utc::now();
        let msg = authenticate_message(&spec_creds(), &challenge, CLIENT_CHALLENGE, now)
            .expect("authenticate");
        let now = FileTime::from(now);
        let auth = parse_authenticate(&msg).expect("parse");
        let blob_time = u64::from_le_bytes(auth.nt_response[24..32].try_into().expect("8"));
        assert_eq!(FileTime(blob_time), now);
        assert_eq!(auth.lm_response.len(), 24);
        assert_ne!(auth.lm_response, vec![0u8; 24]);
    }

    #[test]
    fn workstation_is_empty_unless_one_is_given() {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("parse");
        let msg = authenticate_message(&spec_creds(), &challenge, CLIENT_CHALLENGE, FileTime(0))
            .expect("authenticate");
        assert_eq!(parse_authenticate(&msg).expect("parse").workstation, "");
        let given = parse_authenticate(&spec_authenticate_from_our_client()).expect("parse");
        assert_eq!(given.workstation, WORKSTATION);
    }

    #[test]
    fn channel_bindings_are_echoed_in_the_blob_after_the_server_pairs() {
        let cb = ChannelBindings::tls_server_end_point(&[7u8; 32]);
        let challenge = parse_challenge(&challenge_message(SERVER_CHALLENGE, "CORP", FileTime(5)))
            .expect("parse");
        let options = AuthenticateOptions {
            workstation: String::new(),
            channel_bindings: Some(cb),
        };
        let msg = authenticate_message_with(
            &spec_creds(),
            &challenge,
            &options,
            CLIENT_CHALLENGE,
            FileTime(9),
        )
        .expect("authenticate");
        let auth = parse_authenticate(&msg).expect("parse");
        let pairs = auth.client_av_pairs().expect("client pairs");
        assert_eq!(pairs.channel_bindings(), Some(cb.hash()));
        assert_eq!(&pairs.pairs()[..3], challenge.target_info.pairs());
        assert!(verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
    }

    #[test]
    fn challenge_without_target_info_is_unsupported_because_ntlmv2_is_impossible() {
        assert_eq!(
            parse_challenge(&unhex(SPEC_CHALLENGE_V1)),
            Err(NtlmError::Unsupported(Unsupported::NoTargetInfo))
        );
        // The oldest 32-byte layout has no TargetInfo fields at all.
        let mut short = unhex(SPEC_CHALLENGE_V1);
        short.truncate(32);
        short[12..20].copy_from_slice(&[0; 8]);
        assert_eq!(
            parse_challenge(&short),
            Err(NtlmError::Unsupported(Unsupported::NoTargetInfo))
        );
    }

    #[test]
    fn challenge_offering_lm_only_is_unsupported() {
        let mut bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        let flags =
            (SERVER_FLAGS.bits() & !NegotiateFlags::NTLM.bits()) | NegotiateFlags::LM_KEY.bits();
        bytes[20..24].copy_from_slice(&flags.to_le_bytes());
        assert_eq!(
            parse_challenge(&bytes),
            Err(NtlmError::Unsupported(Unsupported::LmOnly))
        );
    }

    #[test]
    fn challenge_without_unicode_is_unsupported() {
        let mut bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        let flags =
            (SERVER_FLAGS.bits() & !NegotiateFlags::UNICODE.bits()) | NegotiateFlags::OEM.bits();
        bytes[20..24].copy_from_slice(&flags.to_le_bytes());
        assert_eq!(
            parse_challenge(&bytes),
            Err(NtlmError::Unsupported(Unsupported::UnicodeNotNegotiated))
        );
    }

    #[test]
    fn empty_user_name_is_refused_rather_than_sent_anonymously() {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("parse");
        let creds = NtlmCredentials::new("Domain", "", secret(PASSWORD));
        assert_eq!(
            authenticate_message(&creds, &challenge, CLIENT_CHALLENGE, FileTime(0)),
            Err(NtlmError::EmptyUserName)
        );
    }

    #[test]
    fn overlong_user_name_is_a_typed_error_not_a_truncated_field() {
        let challenge = parse_challenge(&unhex(SPEC_CHALLENGE_V2)).expect("parse");
        let creds = NtlmCredentials::new("D", "u".repeat(40_000), secret(PASSWORD));
        assert_eq!(
            authenticate_message(&creds, &challenge, CLIENT_CHALLENGE, FileTime(0)),
            Err(NtlmError::FieldTooLong {
                field: MessageField::UserName,
                len: 80_000
            })
        );
    }

    #[test]
    fn user_name_is_upper_cased_for_ntowfv2_but_the_domain_is_not() {
        let pw = secret(PASSWORD);
        assert_eq!(
            *nt_owf_v2(&pw, "user", DOMAIN),
            *nt_owf_v2(&pw, "USER", DOMAIN)
        );
        assert_ne!(
            *nt_owf_v2(&pw, USER, "domain"),
            *nt_owf_v2(&pw, USER, DOMAIN)
        );
        // One character at a time, like Windows: ß has no single-character upper case.
        assert_eq!(upper_case_like_windows("straße.é"), "STRAßE.É");
    }

    #[test]
    fn down_level_account_splits_into_domain_and_user() {
        let creds = NtlmCredentials::from_account(r"CORP\alice", secret("pw"));
        assert_eq!(
            (creds.domain.as_str(), creds.username.as_str()),
            ("CORP", "alice")
        );
    }

    #[test]
    fn upn_account_is_sent_whole_as_user_with_an_empty_domain() {
        let creds = NtlmCredentials::from_account("alice@corp.example.com", secret("pw"));
        assert_eq!(creds.domain, "");
        assert_eq!(creds.username, "alice@corp.example.com");
        let bare = NtlmCredentials::from_account("alice", secret("pw"));
        assert_eq!(
            (bare.domain.as_str(), bare.username.as_str()),
            ("", "alice")
        );
    }

    #[test]
    fn credentials_debug_never_shows_the_password() {
        let creds = NtlmCredentials::from_account(r"CORP\alice", secret("hunter2-Secret!"));
        let shown = format!("{creds:?} {creds:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn authenticate_debug_never_shows_the_crackable_responses() {
        let auth = parse_authenticate(&unhex(SPEC_AUTHENTICATE_V2)).expect("parse");
        let shown = format!("{auth:?} {auth:#?}");
        let proof_start = format!("{:?}", &auth.nt_response[..4]); // "[104, 205, 10, 184]"
        let lm_start = format!("{:?}", &auth.lm_response[..4]);
        for leak in [
            &proof_start[1..proof_start.len() - 1],
            &lm_start[1..lm_start.len() - 1],
            "68cd",
        ] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
        assert!(
            shown.contains("User") && shown.contains("nt_response_len"),
            "{shown}"
        );
    }

    #[test]
    fn errors_never_carry_remote_strings() {
        let mut bytes = challenge_message(SERVER_CHALLENGE, "SECRET-NAME", FileTime(1));
        bytes.truncate(bytes.len() - 3);
        let err = parse_challenge(&bytes).expect_err("truncated target info");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn filetime_counts_100ns_ticks_from_1601() {
        let epoch = DateTime::<Utc>::from_timestamp(0, 0).expect("epoch");
        assert_eq!(FileTime::from(epoch), FileTime::UNIX_EPOCH);
        let later = DateTime::<Utc>::from_timestamp(1, 500).expect("t");
        assert_eq!(FileTime::from(later).0, FileTime::UNIX_EPOCH.0 + 10_000_005);
        let before_1601 = DateTime::<Utc>::from_timestamp(-11_644_473_601, 0).expect("t");
        assert_eq!(FileTime::from(before_1601), FileTime(0));
    }

    // ---- Round trip: client ↔ fake server -------------------------------------------------

    #[test]
    fn round_trip_verifies_with_the_right_password() {
        let challenge = random_server_challenge();
        let auth = handshake(&spec_creds(), challenge);
        assert_eq!((auth.domain.as_str(), auth.user.as_str()), (DOMAIN, USER));
        assert!(verify_ntlmv2(&auth, challenge, &secret(PASSWORD)));
    }

    #[test]
    fn round_trip_fails_with_a_wrong_password() {
        let challenge = random_server_challenge();
        let auth = handshake(&spec_creds(), challenge);
        assert!(!verify_ntlmv2(&auth, challenge, &secret("Password1")));
        assert!(!verify_ntlmv2(&auth, challenge, &secret("")));
    }

    #[test]
    fn round_trip_fails_when_the_claimed_user_or_domain_is_changed() {
        let challenge = random_server_challenge();
        let auth = handshake(&spec_creds(), challenge);
        let mut other_user = auth.clone();
        other_user.user = "Admin".to_owned();
        assert!(!verify_ntlmv2(&other_user, challenge, &secret(PASSWORD)));
        let mut other_domain = auth.clone();
        other_domain.domain = "Other".to_owned();
        assert!(!verify_ntlmv2(&other_domain, challenge, &secret(PASSWORD)));
        // Upper-casing the user is harmless: NTOWFv2 upper-cases it anyway.
        let mut upper = auth;
        upper.user = "USER".to_owned();
        assert!(verify_ntlmv2(&upper, challenge, &secret(PASSWORD)));
    }

    #[test]
    fn round_trip_fails_when_any_byte_of_the_response_is_tampered() {
        let challenge = random_server_challenge();
        let auth = handshake(&spec_creds(), challenge);
        for i in 0..auth.nt_response.len() {
            let mut tampered = auth.clone();
            tampered.nt_response[i] ^= 0x01;
            assert!(
                !verify_ntlmv2(&tampered, challenge, &secret(PASSWORD)),
                "flipping byte {i} went unnoticed"
            );
        }
        let mut cut = auth.clone();
        cut.nt_response.pop();
        assert!(!verify_ntlmv2(&cut, challenge, &secret(PASSWORD)));
    }

    #[test]
    fn replayed_response_fails_against_another_server_challenge() {
        let first = [1u8; 8];
        let auth = handshake(&spec_creds(), first);
        assert!(verify_ntlmv2(&auth, first, &secret(PASSWORD)));
        assert!(!verify_ntlmv2(&auth, [2u8; 8], &secret(PASSWORD)));
    }

    #[test]
    fn ntlmv1_or_anonymous_responses_never_verify() {
        let mut auth = parse_authenticate(&unhex(SPEC_AUTHENTICATE_V2)).expect("parse");
        let v2 = auth.nt_response.clone();
        auth.nt_response.truncate(24);
        assert!(!verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
        auth.nt_response.clear();
        assert!(!verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
        auth.nt_response = v2;
        auth.user.clear();
        assert!(!verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
    }

    #[test]
    fn each_authenticate_uses_a_fresh_client_challenge() {
        let challenge = random_server_challenge();
        let a = handshake(&spec_creds(), challenge);
        let b = handshake(&spec_creds(), challenge);
        assert_ne!(a.nt_response, b.nt_response);
    }

    #[test]
    fn round_trip_through_header_values() {
        let server_challenge = random_server_challenge();
        let authorization = to_header(&negotiate_message());
        let type1 = from_authorization(&authorization).expect("type 1 token");
        parse_negotiate(&type1).expect("negotiate");
        let www = to_header(&challenge_message(
            server_challenge,
            "CORP",
            FileTime::now(),
        ));
        let type2 = find_www_authenticate(["Negotiate", www.as_str()]).expect("type 2 token");
        let challenge = parse_challenge(&type2).expect("challenge");
        let type3 =
            authenticate_message_now(&spec_creds(), &challenge, &AuthenticateOptions::default())
                .expect("authenticate");
        let authorization = to_header(&type3);
        assert!(authorization.starts_with("NTLM TlRMTVNTUAAD"));
        let auth = parse_authenticate(&from_authorization(&authorization).expect("type 3"))
            .expect("parse");
        assert!(verify_ntlmv2(&auth, server_challenge, &secret(PASSWORD)));
    }

    // ---- Header helpers -------------------------------------------------------------------

    #[test]
    fn www_authenticate_finds_the_ntlm_token_among_comma_joined_challenges() {
        let msg = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        let value = format!(
            "Basic realm=\"mail, example\", Negotiate, {}",
            to_header(&msg)
        );
        assert_eq!(from_www_authenticate(&value), Some(msg));
    }

    #[test]
    fn www_authenticate_accepts_a_raw_ntlm_token_under_negotiate_and_missing_padding() {
        let msg = challenge_message(SERVER_CHALLENGE, "CORPX", FileTime(1));
        let header = to_negotiate_header(&msg);
        assert_eq!(from_www_authenticate(&header), Some(msg.clone()));
        let unpadded = header.trim_end_matches('=');
        assert_eq!(from_www_authenticate(unpadded), Some(msg.clone()));
        assert_eq!(
            from_www_authenticate(&header.to_lowercase().replace("negotiate", "NEGOTIATE")),
            None
        );
        assert_eq!(
            from_www_authenticate(&format!("ntlm   {}", &header[10..])),
            Some(msg)
        );
    }

    #[test]
    fn www_authenticate_ignores_bare_schemes_kerberos_tokens_and_junk() {
        assert_eq!(from_www_authenticate("NTLM"), None);
        assert_eq!(from_www_authenticate("Negotiate, NTLM"), None);
        // A SPNEGO/Kerberos token (ASN.1, starts 0xa1) is not an NTLM message.
        let kerberos = STANDARD.encode([0xa1, 0x81, 0x9c, 0x30, 0x81]);
        assert_eq!(
            from_www_authenticate(&format!("Negotiate {kerberos}")),
            None
        );
        assert_eq!(from_www_authenticate("NTLM !!!not-base64!!!"), None);
        assert_eq!(from_www_authenticate("Bearer TlRMTVNTUAACAAAA"), None);
        let huge = "A".repeat(MAX_TOKEN_B64_LEN + 4);
        assert_eq!(from_www_authenticate(&format!("NTLM {huge}")), None);
    }

    #[test]
    fn offers_ntlm_sees_the_bare_scheme_in_any_position() {
        assert!(offers_ntlm("NTLM"));
        assert!(offers_ntlm("Negotiate, ntlm"));
        assert!(offers_ntlm("Basic realm=\"x\", NTLM TlRMTVNTUAACAAAA"));
        assert!(!offers_ntlm("Negotiate"));
        assert!(!offers_ntlm("Basic realm=\"NTLM\""));
    }

    // ---- Hostile input --------------------------------------------------------------------

    #[test]
    fn every_truncation_of_a_valid_message_is_a_typed_error() {
        let challenge = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        let authenticate = spec_authenticate_from_our_client();
        let negotiate = negotiate_message();
        for len in 0..challenge.len() {
            assert!(
                parse_challenge(&challenge[..len]).is_err(),
                "challenge[..{len}]"
            );
        }
        for len in 0..authenticate.len() {
            assert!(
                parse_authenticate(&authenticate[..len]).is_err(),
                "authenticate[..{len}]"
            );
        }
        for len in 0..negotiate.len() {
            assert!(
                parse_negotiate(&negotiate[..len]).is_err(),
                "negotiate[..{len}]"
            );
        }
        assert_eq!(
            parse_authenticate(&authenticate[..40]),
            Err(NtlmError::Truncated { need: 64, len: 40 })
        );
    }

    #[test]
    fn wrong_signature_is_rejected() {
        let mut bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        bytes[0] = b'X';
        assert_eq!(parse_challenge(&bytes), Err(NtlmError::BadSignature));
        assert_eq!(parse_challenge(b"HTTP/1.1"), Err(NtlmError::BadSignature));
        assert_eq!(parse_authenticate(b"<html>"), Err(NtlmError::BadSignature));
    }

    #[test]
    fn wrong_message_type_is_rejected() {
        let negotiate = negotiate_message();
        assert_eq!(
            parse_challenge(&[negotiate.clone(), vec![0; 32]].concat()),
            Err(NtlmError::WrongMessageType {
                expected: 2,
                found: 1
            })
        );
        let challenge = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        assert_eq!(
            parse_authenticate(&[challenge, vec![0; 32]].concat()),
            Err(NtlmError::WrongMessageType {
                expected: 3,
                found: 2
            })
        );
        assert_eq!(
            parse_negotiate(&spec_authenticate_from_our_client()),
            Err(NtlmError::WrongMessageType {
                expected: 1,
                found: 3
            })
        );
    }

    #[test]
    fn huge_declared_lengths_are_out_of_bounds() {
        let mut bytes = spec_authenticate_from_our_client();
        bytes[20..22].copy_from_slice(&u16::MAX.to_le_bytes()); // NtChallengeResponseLen
        assert!(matches!(
            parse_authenticate(&bytes),
            Err(NtlmError::FieldOutOfBounds {
                field: MessageField::NtChallengeResponse,
                len: u16::MAX,
                ..
            })
        ));
        let mut bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        bytes[40..42].copy_from_slice(&u16::MAX.to_le_bytes()); // TargetInfoLen
        assert!(matches!(
            parse_challenge(&bytes),
            Err(NtlmError::FieldOutOfBounds {
                field: MessageField::TargetInfo,
                ..
            })
        ));
    }

    #[test]
    fn offsets_past_the_end_are_out_of_bounds() {
        for offset in [200u32, 0x0001_0000, u32::MAX - 1, u32::MAX] {
            let mut bytes = spec_authenticate_from_our_client();
            bytes[32..36].copy_from_slice(&offset.to_le_bytes()); // DomainNameBufferOffset
            assert_eq!(
                parse_authenticate(&bytes),
                Err(NtlmError::FieldOutOfBounds {
                    field: MessageField::DomainName,
                    offset,
                    len: 12,
                    message_len: bytes.len()
                })
            );
            let mut bytes = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
            bytes[16..20].copy_from_slice(&offset.to_le_bytes()); // TargetNameBufferOffset
            assert!(matches!(
                parse_challenge(&bytes),
                Err(NtlmError::FieldOutOfBounds {
                    field: MessageField::TargetName,
                    ..
                })
            ));
        }
    }

    #[test]
    fn strings_that_are_not_utf16_are_rejected() {
        // Odd length.
        let mut bytes = spec_authenticate_from_our_client();
        bytes[36..38].copy_from_slice(&7u16.to_le_bytes()); // UserNameLen
        assert_eq!(
            parse_authenticate(&bytes),
            Err(NtlmError::NotUtf16 {
                field: MessageField::UserName
            })
        );
        // Unpaired surrogate in the domain (first unit becomes 0xd800).
        let mut bytes = spec_authenticate_from_our_client();
        let domain_at = usize::try_from(read_u32(&bytes, 32).expect("offset")).expect("usize");
        bytes[domain_at..domain_at + 2].copy_from_slice(&0xd800u16.to_le_bytes());
        assert_eq!(
            parse_authenticate(&bytes),
            Err(NtlmError::NotUtf16 {
                field: MessageField::DomainName
            })
        );
    }

    #[test]
    fn authenticate_without_unicode_is_unsupported() {
        let mut bytes = spec_authenticate_from_our_client();
        bytes[60] &= !0x01;
        assert_eq!(
            parse_authenticate(&bytes),
            Err(NtlmError::Unsupported(Unsupported::UnicodeNotNegotiated))
        );
    }

    /// A CHALLENGE_MESSAGE whose TargetInfo is exactly `info`.
    fn challenge_with_target_info(info: &[u8]) -> Vec<u8> {
        let mut w = MessageWriter::new(TYPE_CHALLENGE, CHALLENGE_HEADER_LEN);
        w.field(&[]);
        w.bytes(&SERVER_FLAGS.bits().to_le_bytes());
        w.bytes(&SERVER_CHALLENGE);
        w.bytes(&[0; 8]);
        w.field(info);
        w.finish()
    }

    #[test]
    fn malformed_av_pairs_are_typed_errors() {
        let field = MessageField::TargetInfo;
        let cases: [(&str, NtlmError); 5] = [
            // Domain pair without MsvAvEOL.
            ("0200040041004200", NtlmError::AvPairsUnterminated { field }),
            // Pair claims 0xffff bytes.
            ("0200ffff4100", NtlmError::AvPairTruncated { field, at: 0 }),
            // Two bytes of a header left over.
            (
                "020002004100 0100",
                NtlmError::AvPairTruncated { field, at: 6 },
            ),
            // Timestamp of 4 bytes.
            (
                "0700040001020304 00000000",
                NtlmError::AvPairBadLength {
                    field,
                    av_id: 7,
                    len: 4,
                    expected: 8,
                },
            ),
            // Odd-length computer name.
            ("0100030041004200 00000000", NtlmError::NotUtf16 { field }),
        ];
        for (info, expected) in cases {
            let info = unhex(&info.replace(' ', ""));
            assert_eq!(
                parse_challenge(&challenge_with_target_info(&info)),
                Err(expected),
                "{}",
                hex(&info)
            );
        }
    }

    #[test]
    fn unknown_av_pairs_are_kept_and_echoed_byte_for_byte() {
        let info = unhex(
            "0800040001020304 2a00020099aa 00000000"
                .replace(' ', "")
                .as_str(),
        );
        let challenge = parse_challenge(&challenge_with_target_info(&info)).expect("parse");
        assert_eq!(challenge.target_info.to_bytes().expect("encode"), info);
    }

    #[test]
    fn oversized_messages_are_refused_before_parsing() {
        let mut big = challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1));
        big.resize(MAX_MESSAGE_LEN + 1, 0);
        let too_large = NtlmError::TooLarge {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN,
        };
        assert_eq!(parse_challenge(&big), Err(too_large.clone()));
        assert_eq!(parse_authenticate(&big), Err(too_large.clone()));
        assert_eq!(parse_negotiate(&big), Err(too_large));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic_and_never_verify() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x6e74_6c6d);
        let seeds = [
            negotiate_message(),
            challenge_message(SERVER_CHALLENGE, "CORP", FileTime(1)),
            unhex(SPEC_CHALLENGE_V2),
            spec_authenticate_from_our_client(),
            unhex(SPEC_AUTHENTICATE_V2),
        ];
        let mut parsed_authenticates = 0;
        for round in 0..30_000u32 {
            let bytes: Vec<u8> = match round % 3 {
                // Pure noise.
                0 => {
                    let len = rng.gen_range(0..160);
                    (0..len).map(|_| rng.gen()).collect()
                }
                // A valid signature and type, then noise.
                1 => {
                    let mut b = SIGNATURE.to_vec();
                    b.extend_from_slice(&rng.gen_range(1u32..=3).to_le_bytes());
                    let len = rng.gen_range(0..200);
                    b.extend((0..len).map(|_| rng.gen::<u8>()));
                    b
                }
                // A real message with a few bytes changed (lengths, offsets, pairs, strings).
                _ => {
                    let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..b.len());
                        b[i] = rng.gen();
                    }
                    if rng.gen_bool(0.1) {
                        let keep = rng.gen_range(0..b.len());
                        b.truncate(keep);
                    }
                    b
                }
            };
            let _ = parse_negotiate(&bytes);
            if let Ok(challenge) = parse_challenge(&bytes) {
                let _ =
                    authenticate_message(&spec_creds(), &challenge, CLIENT_CHALLENGE, FileTime(3));
            }
            if let Ok(auth) = parse_authenticate(&bytes) {
                parsed_authenticates += 1;
                let _ = auth.client_av_pairs();
                // A mutated proof or blob must not verify; an untouched one may.
                let untouched = seeds[3..].iter().any(|s| {
                    parse_authenticate(s)
                        .map(|a| {
                            a.nt_response == auth.nt_response
                                && a.domain == auth.domain
                                && upper_case_like_windows(&a.user)
                                    == upper_case_like_windows(&auth.user)
                        })
                        .unwrap_or(false)
                });
                if !untouched {
                    assert!(!verify_ntlmv2(&auth, SERVER_CHALLENGE, &secret(PASSWORD)));
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = from_www_authenticate(&text);
            let _ = offers_ntlm(&text);
        }
        assert!(
            parsed_authenticates > 100,
            "mutations should reach verification"
        );
    }
}
