//! Reading every snapshot, robust to damaged ones; resolving a snapshot
//! reference; and the damage markers that `repo repair` leaves on snapshots
//! whose data is missing.
//!
//! One snapshot file that does not read, decrypt or parse is skipped with a
//! warning naming it, never failing the listing: a planted or rotten object
//! must not make every other snapshot unreachable. A full id reads only that
//! snapshot.

use crate::repository::Read;
use crate::{FileKind, Id, RepoError, Repository, Snapshot};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_store::PutOptions;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::task::JoinSet;

/// Snapshot files (and damage markers) read at once.
const SNAPSHOT_READS: usize = 8;

/// `damage/<snapshot id>`: `repo repair` found data of this snapshot missing
/// or unreadable. A marked snapshot is left out of `latest`, of parent
/// selection and of [`Repository::snapshots`], but can still be named by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageMarker {
    pub version: u32,
    /// The snapshot marked; must equal the id in the object's key.
    pub snapshot: Id,
    pub time: DateTime<Utc>,
    /// What repair found (at most a few problems, as text).
    pub problems: Vec<String>,
}

/// Every snapshot file, sorted into what can be used and what cannot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotListing {
    /// Readable snapshots without a damage marker, oldest first.
    pub usable: Vec<(Id, Snapshot)>,
    /// Readable snapshots that carry a damage marker, oldest first.
    pub damaged: Vec<(Id, Snapshot, DamageMarker)>,
    /// Snapshot files that cannot be read, decrypted or parsed, with why.
    pub unreadable: Vec<(Id, String)>,
}

fn oldest_first<T>(v: &mut [(Id, Snapshot, T)]) {
    v.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
}

impl Repository {
    /// Every usable snapshot, oldest first: snapshot files that cannot be
    /// read are skipped with a warning naming each, and snapshots marked
    /// damaged are left out (see [`Repository::snapshot_listing`]).
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>, RepoError> {
        Ok(self.snapshot_listing().await?.usable)
    }

    /// Every snapshot file, read 8 at a time, sorted into usable, damaged
    /// and unreadable.
    pub async fn snapshot_listing(&self) -> Result<SnapshotListing, RepoError> {
        let ids = self.list_ids(FileKind::Snapshot).await?;
        let read = self.read_all::<Snapshot>(FileKind::Snapshot, ids).await?;
        let mut markers = self.damage_markers().await?;
        let mut listing = SnapshotListing::default();
        let mut usable = Vec::new();
        for (id, r) in read {
            match r {
                Read::Ok(s) => match markers.remove(&id) {
                    Some(m) => listing.damaged.push((id, s, m)),
                    None => usable.push((id, s, ())),
                },
                Read::Gone => {}
                Read::Bad(why) => {
                    tracing::warn!(snapshot = %id, reason = %why, "skipping a snapshot file that cannot be read");
                    listing.unreadable.push((id, why));
                }
            }
        }
        oldest_first(&mut usable);
        oldest_first(&mut listing.damaged);
        listing.usable = usable.into_iter().map(|(id, s, ())| (id, s)).collect();
        listing.unreadable.sort_by_key(|u| u.0);
        Ok(listing)
    }

    /// Read the files `ids` of one kind, [`SNAPSHOT_READS`] at a time, in
    /// no particular order: each one's content, or why it cannot be used
    /// (junk, rotten, tampered with). Files deleted since they were listed
    /// are left out; a store that fails is an error.
    pub async fn read_files<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        kind: FileKind,
        ids: Vec<Id>,
    ) -> Result<Vec<(Id, Result<T, String>)>, RepoError> {
        Ok(self
            .read_all::<T>(kind, ids)
            .await?
            .into_iter()
            .filter_map(|(id, r)| match r {
                Read::Ok(v) => Some((id, Ok(v))),
                Read::Gone => None,
                Read::Bad(why) => Some((id, Err(why))),
            })
            .collect())
    }

    /// Read files of one kind, [`SNAPSHOT_READS`] at a time.
    async fn read_all<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        kind: FileKind,
        ids: Vec<Id>,
    ) -> Result<Vec<(Id, Read<T>)>, RepoError> {
        let mut set = JoinSet::new();
        let mut out = Vec::with_capacity(ids.len());
        let mut pending = ids.into_iter();
        loop {
            while set.len() < SNAPSHOT_READS {
                let Some(id) = pending.next() else { break };
                let repo = self.clone();
                set.spawn(async move {
                    let r = match kind {
                        FileKind::Damage => repo.load_marker::<T>(&id).await,
                        _ => repo.load_file::<T>(kind, &id).await,
                    };
                    (id, Read::of(r))
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (id, r) = joined.map_err(|e| RepoError::malformed(kind.name(), e))?;
            out.push((id, r?));
        }
        Ok(out)
    }

    async fn load_marker<T: serde::de::DeserializeOwned>(&self, id: &Id) -> Result<T, RepoError> {
        let bytes = self.store.get(&FileKind::Damage.key(id)).await?;
        self.open_sealed(
            format!("damage marker {id}"),
            &crate::Aad::file(self.format(), FileKind::Damage),
            &bytes,
        )
    }

    /// The damage markers, by snapshot. A marker that does not decrypt, or
    /// names another snapshot than its key, is ignored with a warning.
    pub async fn damage_markers(&self) -> Result<HashMap<Id, DamageMarker>, RepoError> {
        let ids = self.list_ids(FileKind::Damage).await?;
        let mut out = HashMap::new();
        for (id, r) in self.read_all::<DamageMarker>(FileKind::Damage, ids).await? {
            match r {
                Read::Ok(m) if m.snapshot == id => {
                    out.insert(id, m);
                }
                Read::Ok(m) => {
                    tracing::warn!(marker = %id, names = %m.snapshot, "ignoring a damage marker stored under another snapshot's id")
                }
                Read::Gone => {}
                Read::Bad(why) => {
                    tracing::warn!(marker = %id, reason = %why, "ignoring a damage marker that cannot be read")
                }
            }
        }
        Ok(out)
    }

    /// Mark a snapshot damaged. The marker carries no Object Lock, so that
    /// `repo repair` can remove it once the data is back.
    pub async fn mark_damaged(&self, marker: &DamageMarker) -> Result<(), RepoError> {
        let what = "damage marker";
        let json = serde_json::to_vec(marker).map_err(|e| RepoError::malformed(what, e))?;
        let compressed = zstd::bulk::compress(&json, self.config().compression_level)
            .map_err(|e| RepoError::malformed(what, e))?;
        let sealed = self.key().seal(
            &compressed,
            &crate::Aad::file(self.format(), FileKind::Damage),
        )?;
        self.store
            .put(
                &FileKind::Damage.key(&marker.snapshot),
                Bytes::from(sealed),
                &PutOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Remove a snapshot's damage marker.
    pub async fn unmark_damaged(&self, snapshot: &Id) -> Result<(), RepoError> {
        self.store.delete(&FileKind::Damage.key(snapshot)).await?;
        Ok(())
    }

    /// Find a snapshot by full id, unique id prefix, or `latest` (the newest
    /// usable snapshot). A full id or a prefix reads only the snapshot it
    /// names, which may be one marked damaged.
    pub async fn resolve_snapshot(&self, spec: &str) -> Result<(Id, Snapshot), RepoError> {
        if spec == "latest" {
            let listing = self.snapshot_listing().await?;
            let (damaged, unreadable) = (listing.damaged.len(), listing.unreadable.len());
            return listing.usable.into_iter().last().ok_or_else(|| {
                let location = self.store.location();
                RepoError::SnapshotRef(if damaged + unreadable == 0 {
                    format!("repository {location} has no snapshots yet")
                } else {
                    format!(
                        "repository {location} has no usable snapshots: {damaged} marked \
                         damaged, {unreadable} unreadable (see `lifeboat repo check`; \
                         name one by id to read it anyway)"
                    )
                })
            });
        }
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotRef(format!(
                "{spec:?} is not a snapshot id, id prefix, or \"latest\""
            )));
        }
        let id = match spec_l.parse::<Id>() {
            Ok(id) if spec_l.len() == 64 => id,
            _ => {
                let mut matches: Vec<Id> = self
                    .list_ids(FileKind::Snapshot)
                    .await?
                    .into_iter()
                    .filter(|id| id.to_hex().starts_with(&spec_l))
                    .collect();
                match matches.len() {
                    1 => matches.remove(0),
                    0 => {
                        return Err(RepoError::SnapshotRef(format!(
                            "no snapshot matches {spec:?}"
                        )))
                    }
                    n => {
                        return Err(RepoError::SnapshotRef(format!(
                            "{spec:?} matches {n} snapshots; give more digits"
                        )))
                    }
                }
            }
        };
        match self.load_file::<Snapshot>(FileKind::Snapshot, &id).await {
            Ok(s) => Ok((id, s)),
            Err(RepoError::Store(e)) if e.is_not_found() => Err(RepoError::SnapshotRef(format!(
                "no snapshot matches {spec:?}"
            ))),
            Err(e) => Err(e),
        }
    }
}
