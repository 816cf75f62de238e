//! Personal data in the log: sealed per data subject, erasable by destroying the subject's key
//! (crypto-shredding).
//!
//! Every new event that names a person holds ciphertext where the person's data was: the
//! personal fields ([`fields`]) are grouped by their data subject (the person's e-mail
//! address, or an actor's id, normalised), each group encrypted with that subject's data key
//! (AES-256-GCM) into one entry of the event's `$sealed` list, and the fields themselves hold
//! `null`. The event's version gets the suffix [`SEALED_SUFFIX`], so a binary that predates
//! sealing blocks on it instead of misreading the nulls. The hash chain covers what is stored,
//! the ciphertext: destroying a key changes no stored byte, and `verify` passes before and
//! after an erasure.
//!
//! Data keys live in `subject_keys`, wrapped (AES-256-GCM) by the process's master key and
//! named by a random key id; the subject itself appears there only as a keyed digest
//! ([`MasterKey::subject_digest`]), which a dictionary of addresses cannot reverse without the
//! master key. Readers select the wrapped keys an event needs with the event itself
//! ([`SEALED_KEYS`]) and open it on the way out of the store ([`seal::open`]); a key that no
//! longer exists reads as [`ERASED`].

pub mod fields;
pub mod seal;

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// What an erased subject's data reads as, wherever it was.
pub const ERASED: &str = "[erased]";

/// Appended to the version of an event that holds sealed fields (`2.3` -> `2.3+sealed`).
pub const SEALED_SUFFIX: &str = "+sealed";

/// The select-list expression that brings, with each event, the wrapped keys its sealed
/// entries name (a JSON object from key id to hex), or NULL for an event with none. Readers
/// select it as `keys` beside the event's columns (see `event::EVENT_COLUMNS`).
#[macro_export]
macro_rules! sealed_keys_column {
    // `= ANY (ARRAY(...))` rather than `IN (...)`: an index probe per key, not a scan of
    // `subject_keys` per event.
    () => {
        "CASE WHEN event_version LIKE '%+sealed' THEN \
           (SELECT jsonb_object_agg(k.key_id::text, encode(k.wrapped, 'hex')) \
              FROM subject_keys k \
             WHERE k.key_id = ANY (ARRAY( \
                     SELECT (e ->> 'key')::uuid \
                       FROM jsonb_array_elements(coalesce(payload -> '$sealed', '[]') \
                                                 || coalesce(metadata -> '$sealed', '[]')) e))) \
         END AS keys"
    };
}

/// [`sealed_keys_column!`] as a constant.
pub const SEALED_KEYS: &str = sealed_keys_column!();

/// Why personal data could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivacyError {
    /// No master key was installed in this process (a bug of the caller: every binary
    /// installs one at start).
    #[error("no master key is installed in this process")]
    NoMasterKey,
    /// Another master key is already installed.
    #[error("a different master key is already installed in this process")]
    OtherMasterKey,
    /// The master key text is not 64 hex digits.
    #[error("a master key is 64 hex digits (32 bytes)")]
    BadMasterKey,
    /// A stored key does not open with this master key: the database's keys were wrapped by
    /// another master key, or the row was altered.
    #[error("data key {0} does not open with this master key (wrong master key?)")]
    Unwrap(Uuid),
    /// A sealed entry does not decrypt with its key: the stored ciphertext was altered.
    #[error("sealed data under key {0} does not decrypt")]
    Decrypt(Uuid),
    /// A sealed entry or a key list is not in the shape this binary writes.
    #[error("sealed data is malformed: {0}")]
    Malformed(String),
    /// Sealing needs a key the caller did not provide (a bug of the caller).
    #[error("no data key was provided for a subject of this event")]
    MissingKey,
}

/// The key that wraps every data key. 32 bytes; never stored in the database.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    /// Reads 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, PrivacyError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PrivacyError::BadMasterKey);
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| PrivacyError::BadMasterKey)?;
        }
        Ok(Self(bytes))
    }

    /// The key as 64 lower-case hex digits (for writing the development key file).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A short public name of this key (recorded in the database, so that a process started
    /// with another master key refuses to run instead of failing on every sealed event).
    pub fn fingerprint(&self) -> String {
        hex16(&self.mac(b"subdesk master key fingerprint v1", b""))
    }

    /// The keyed digest that names a data subject in `subject_keys` and in `ErasureRecorded`:
    /// HMAC-SHA-256 under the master key of the normalised address. Unlike a bare hash, a
    /// dictionary of addresses does not reverse it without the master key.
    pub fn subject_digest(&self, subject: &str) -> String {
        let digest = self.mac(b"subdesk subject v1", normalize(subject).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// A data key wrapped for storage: nonce (12 bytes) then ciphertext, bound to its key id.
    pub fn wrap(&self, key_id: Uuid, key: &DataKey) -> Vec<u8> {
        seal_bytes(&self.cipher(), key_id.as_bytes(), &key.0)
    }

    /// Opens a wrapped data key, from a cache of the keys this process opened before (by key
    /// id and wrapped bytes: a key is used only when its stored row came with the event, so
    /// the cache never outlives an erasure).
    pub fn unwrap_key(&self, key_id: Uuid, wrapped: &[u8]) -> Result<DataKey, PrivacyError> {
        let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((master, bytes, key)) = opened.get(&key_id) {
            if *master == self.0 && bytes.as_slice() == wrapped {
                return Ok(key.clone());
            }
        }
        let key = self.unwrap_uncached(key_id, wrapped)?;
        if opened.len() >= OPENED_CAPACITY {
            opened.clear();
        }
        opened.insert(key_id, (self.0, wrapped.to_vec(), key.clone()));
        Ok(key)
    }

    fn unwrap_uncached(&self, key_id: Uuid, wrapped: &[u8]) -> Result<DataKey, PrivacyError> {
        let bytes = open_bytes(&self.cipher(), key_id.as_bytes(), wrapped)
            .ok_or(PrivacyError::Unwrap(key_id))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| PrivacyError::Unwrap(key_id))?;
        Ok(DataKey(key))
    }
}

/// One subject's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

/// The form of an address that names its subject: trimmed and lower-cased (addresses are
/// compared without case everywhere in subdesk).
pub fn normalize(subject: &str) -> String {
    subject.trim().to_lowercase()
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// AES-256-GCM with a random nonce, written in front of the ciphertext.
fn seal_bytes(cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(OsRng);
    let mut out = nonce.to_vec();
    // Encrypting into a Vec fails only if the message exceeds GCM's 64 GiB limit.
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .unwrap_or_default();
    out.extend_from_slice(&sealed);
    out
}

fn open_bytes(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

static MASTER: OnceLock<MasterKey> = OnceLock::new();

/// Data keys this process unwrapped, by key id, with the master key and wrapped bytes they
/// came from.
type Opened = std::collections::HashMap<Uuid, ([u8; 32], Vec<u8>, DataKey)>;
static OPENED: std::sync::LazyLock<std::sync::Mutex<Opened>> =
    std::sync::LazyLock::new(Default::default);
/// Keys kept opened at most (then the cache starts over).
const OPENED_CAPACITY: usize = 100_000;

/// Installs the process's master key (once; installing the same key again is a no-op).
pub fn install(key: MasterKey) -> Result<(), PrivacyError> {
    let installed = MASTER.get_or_init(|| key.clone());
    if *installed == key {
        Ok(())
    } else {
        Err(PrivacyError::OtherMasterKey)
    }
}

/// The process's master key, once installed.
pub fn master() -> Result<&'static MasterKey, PrivacyError> {
    MASTER.get().ok_or(PrivacyError::NoMasterKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_master_key_and_id() {
        let master = MasterKey::generate();
        let key = DataKey::generate();
        let id = Uuid::now_v7();
        let wrapped = master.wrap(id, &key);
        assert_eq!(master.unwrap_key(id, &wrapped), Ok(key.clone()));
        assert_eq!(
            MasterKey::generate().unwrap_key(id, &wrapped),
            Err(PrivacyError::Unwrap(id))
        );
        let other = Uuid::now_v7();
        assert_eq!(
            master.unwrap_key(other, &wrapped),
            Err(PrivacyError::Unwrap(other))
        );
    }

    #[test]
    fn subject_digests_ignore_case_and_depend_on_the_master_key() {
        let master = MasterKey::generate();
        assert_eq!(
            master.subject_digest(" Ann@Acme.example "),
            master.subject_digest("ann@acme.example")
        );
        assert_ne!(
            master.subject_digest("ann@acme.example"),
            MasterKey::generate().subject_digest("ann@acme.example")
        );
        assert_eq!(master.subject_digest("ann@acme.example").len(), 64);
    }

    #[test]
    fn master_keys_read_from_hex_and_refuse_anything_else() {
        let master = MasterKey::generate();
        assert_eq!(MasterKey::from_hex(&master.to_hex()), Ok(master.clone()));
        assert_eq!(
            MasterKey::from_hex(&format!("{}\n", master.to_hex())),
            Ok(master)
        );
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(66)] {
            assert_eq!(MasterKey::from_hex(bad), Err(PrivacyError::BadMasterKey));
        }
    }
}
