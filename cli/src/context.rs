//! Global options: where the repository is and how to open it.

use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat_repo::{Credential, FileCache, Repository};
use lifeboat_store::{MeteredStore, ObjectStore, StoreMeter, StoreUrl};
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
    /// Where snapshot and index files of remote repositories are kept
    /// between commands (sealed, checked on every use; default
    /// $XDG_CACHE_HOME/lifeboat/repos or ~/.cache/lifeboat/repos).
    #[arg(long, env = "LIFEBOAT_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Read every snapshot and index file from the repository itself.
    #[arg(long, global = true)]
    pub no_cache: bool,
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

    /// Open the repository; a remote one with the local file cache
    /// (unless --no-cache).
    pub async fn open(&self) -> Result<Repository> {
        Ok(self.with_cache(self.open_uncached().await?))
    }

    /// Open the repository reading every file from the store: for check
    /// and repair, which must judge the store's copy, never the cache's.
    pub async fn open_uncached(&self) -> Result<Repository> {
        let cred = self.credential()?;
        let store = self.store().await?;
        Ok(Repository::open(store, &cred).await?)
    }

    /// The repository, its store wrapped in a [`MeteredStore`] whose
    /// counts the command reports (`output::store_usage`); remote
    /// repositories with the local file cache, as [`GlobalArgs::open`].
    pub async fn open_metered(&self) -> Result<(Repository, Arc<StoreMeter>)> {
        let cred = self.credential()?;
        let (store, meter) = MeteredStore::wrap(self.store().await?);
        let repo = Repository::open(store, &cred).await?;
        Ok((self.with_cache(repo), meter))
    }

    fn with_cache(&self, repo: Repository) -> Repository {
        match self.cache() {
            Some(cache) => repo.with_cache(cache),
            None => repo,
        }
    }

    /// The cache for this repository: none for a local directory (it is
    /// as near as the cache) or with --no-cache.
    fn cache(&self) -> Option<FileCache> {
        if self.no_cache {
            return None;
        }
        let url = StoreUrl::parse(self.repo.as_deref()?).ok()?;
        if matches!(url, StoreUrl::Local(_)) {
            return None;
        }
        let dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => default_cache_base()?.join("lifeboat").join("repos"),
        };
        Some(FileCache::new(dir))
    }
}

fn default_cache_base() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME").or_else(|| from("HOME").map(|h| h.join(".cache")))
}
