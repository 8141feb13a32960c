//! Global options: where the repository is and how to open it.

use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat_repo::{Credential, Repository};
use lifeboat_store::ObjectStore;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Repository: a path, file:///path, s3://bucket/prefix,
    /// azure://account/container/prefix or gs://bucket/prefix.
    #[arg(long, short = 'r', env = "LIFEBOAT_REPO", global = true)]
    pub repo: Option<String>,
    /// File whose first line is the passphrase (else LIFEBOAT_PASSWORD).
    #[arg(long, env = "LIFEBOAT_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Key file (at least 32 random bytes) used instead of a passphrase.
    #[arg(long, env = "LIFEBOAT_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug).
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl GlobalArgs {
    pub async fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let Some(url) = &self.repo else {
            bail!("no repository given: pass --repo or set LIFEBOAT_REPO");
        };
        Ok(lifeboat_stores::open(url, &Default::default()).await?)
    }

    /// The credential, from a key file, a password file or LIFEBOAT_PASSWORD.
    pub fn credential(&self) -> Result<Credential> {
        if let Some(p) = &self.key_file {
            let bytes = std::fs::read(p)
                .with_context(|| format!("cannot read key file {}", p.display()))?;
            return Ok(Credential::KeyFile(bytes));
        }
        if let Some(p) = &self.password_file {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read password file {}", p.display()))?;
            let line = text.lines().next().unwrap_or("").to_string();
            if line.is_empty() {
                bail!("password file {} is empty", p.display());
            }
            return Ok(Credential::Passphrase(line));
        }
        match std::env::var("LIFEBOAT_PASSWORD") {
            Ok(p) if !p.is_empty() => Ok(Credential::Passphrase(p)),
            _ => {
                bail!("no passphrase: set LIFEBOAT_PASSWORD, or pass --password-file or --key-file")
            }
        }
    }

    pub async fn open(&self) -> Result<Repository> {
        let cred = self.credential()?;
        let store = self.store().await?;
        Ok(Repository::open(store, &cred).await?)
    }
}
