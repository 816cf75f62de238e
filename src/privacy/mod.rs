//! Personal data at the process's edge: the master key this process runs with, and the data
//! keys of the command path ([`keyring`]). What is sealed, and how, is
//! `subdesk_projections::privacy`.

pub mod erase;
pub mod keyring;
pub mod rewrite;

use std::path::Path;

use anyhow::Context;
use subdesk_projections::privacy::MasterKey;

pub use keyring::{Keyring, KeyringError};

/// `subdesk privacy ...`.
#[derive(Debug, clap::Subcommand)]
pub enum PrivacyCommand {
    /// Erase a data subject and wait until everything derived from their data is scrubbed
    /// (read models rebuilt); prints the erasure as JSON.
    Erase {
        /// Their e-mail address (a staff user: their user id).
        #[arg(long)]
        subject: String,
        /// Why, for the record (do not name the person).
        #[arg(long)]
        reason: String,
    },
    /// Seal the personal data of events written before sealing existed, in place, in one
    /// transaction (appends wait meanwhile; reads go on); keeps every position and records the
    /// old chain hashes as anchors that `verify` checks. Prints what it did as JSON.
    SealExisting,
}

/// Where the master key comes from.
#[derive(Clone, clap::Args)]
pub struct KeyArgs {
    /// The master key that wraps the data keys of personal data, as 64 hex digits. Without
    /// it (or a key file) a development key is generated into the data directory.
    #[arg(
        long,
        env = "SUBDESK_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// A file holding the master key (64 hex digits).
    #[arg(long, env = "SUBDESK_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyArgs")
            .field("master_key", &self.master_key.as_ref().map(|_| "[hidden]"))
            .field("master_key_file", &self.master_key_file)
            .finish()
    }
}

/// The development master key's file in the data directory.
pub const DEV_KEY_FILE: &str = "master.key";

/// The master key from `SUBDESK_MASTER_KEY` (64 hex digits), from the file
/// `SUBDESK_MASTER_KEY_FILE` names, or else the development key in the data directory
/// (generated on first use, with a warning: whoever reads the data directory reads the key).
pub fn load_master_key(keys: &KeyArgs, data_dir: &Path) -> anyhow::Result<MasterKey> {
    if let Some(text) = &keys.master_key {
        return MasterKey::from_hex(text).context("SUBDESK_MASTER_KEY");
    }
    if let Some(path) = &keys.master_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the master key file {}", path.display()))?;
        return MasterKey::from_hex(&text)
            .with_context(|| format!("the master key file {}", path.display()));
    }
    development_key(data_dir)
}

fn development_key(data_dir: &Path) -> anyhow::Result<MasterKey> {
    let path = data_dir.join(DEV_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return MasterKey::from_hex(&text)
                .with_context(|| format!("the development master key {}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = MasterKey::generate();
    write_private(&path, &key.to_hex())
        .with_context(|| format!("writing the development master key {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "generated a development master key; in production set SUBDESK_MASTER_KEY_FILE \
         (or SUBDESK_MASTER_KEY) and keep the key away from the database and its backups"
    );
    Ok(key)
}

/// Creates `path` readable by its owner only; fails if it exists (another process won the
/// race: its key is the one to use, and the caller reads it on its next start).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
