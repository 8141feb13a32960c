//! `repo check`: is every snapshot whole, every pack intact, every object locked?

use crate::reachable::protected_keys;
use crate::{OpsError, Progress};
use chrono::{Duration, Utc};
use lifeboat_repo::{
    parse_pack, BlobLocation, FileKind, Id, Index, IndexFile, NodeType, PackBlob, RepoError,
    Repository, Snapshot, Tree,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Download every pack and verify every blob in it.
    pub read_data: bool,
    /// Check only these snapshots and the packs they use (no orphan report);
    /// `None` checks the whole repository.
    pub snapshots: Option<Vec<Id>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is missing, damaged or unprotected.
    Error,
    /// Harmless leftovers (an interrupted backup's packs).
    Warning,
}

/// One finding, naming the object and the snapshots it affects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    pub severity: Severity,
    pub object: String,
    pub message: String,
    pub snapshots: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub trees: u64,
    pub blobs_referenced: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub objects_lock_checked: u64,
    pub problems: Vec<Problem>,
    /// Snapshots that a restore cannot fully restore (data missing,
    /// unreadable or refused), by full id.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub damaged_snapshots: BTreeSet<Id>,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    fn push(
        &mut self,
        severity: Severity,
        object: String,
        message: String,
        snapshots: Vec<String>,
    ) {
        self.problems.push(Problem {
            severity,
            object,
            message,
            snapshots,
        });
    }
}

struct Walk<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Trees read so far; `None` for one that cannot be read.
    trees: HashMap<Id, Option<Tree>>,
    /// Trees that restore would refuse (a name unsafe or listed twice).
    refused: HashSet<Id>,
    /// Pack -> snapshots that need it (every copy of a blob stored twice).
    pack_users: HashMap<Id, BTreeSet<Id>>,
    referenced: HashSet<Id>,
}

impl Walk<'_> {
    async fn snapshot(&mut self, report: &mut CheckReport, sid: &Id, snap: &Snapshot) {
        let who = sid.short();
        let mut damaged = false;
        let mut stack = vec![snap.tree];
        while let Some(tid) = stack.pop() {
            damaged |= !self.blob(report, &tid, sid, "tree");
            if !self.trees.contains_key(&tid) {
                let t = match self.repo.load_tree(self.index, &tid).await {
                    Ok(t) => Some(t),
                    Err(RepoError::BlobNotIndexed { .. }) => None, // reported by blob()
                    Err(e) => {
                        report.push(
                            Severity::Error,
                            format!("tree {tid}"),
                            e.to_string(),
                            vec![who.clone()],
                        );
                        None
                    }
                };
                if let Some(why) = t.as_ref().and_then(refusal) {
                    report.push(
                        Severity::Error,
                        format!("tree {tid}"),
                        why,
                        vec![who.clone()],
                    );
                    self.refused.insert(tid);
                }
                report.trees += 1;
                self.trees.insert(tid, t);
            }
            damaged |= self.refused.contains(&tid);
            let Some(Some(tree)) = self.trees.get(&tid) else {
                damaged = true;
                continue;
            };
            let tree = tree.clone();
            for node in &tree.nodes {
                for c in &node.content {
                    damaged |= !self.blob(report, &c.id, sid, "data");
                }
                if node.node_type == NodeType::Dir {
                    match node.subtree {
                        Some(s) => stack.push(s),
                        None => {
                            damaged = true;
                            report.push(
                                Severity::Error,
                                format!("tree {tid}"),
                                format!("directory {:?} has no subtree", node.name),
                                vec![who.clone()],
                            )
                        }
                    }
                }
            }
        }
        if damaged {
            report.damaged_snapshots.insert(*sid);
        }
    }

    /// Note a referenced blob; false (and an error) if no index lists it.
    fn blob(&mut self, report: &mut CheckReport, id: &Id, sid: &Id, kind: &str) -> bool {
        let mut found = false;
        for loc in self.index.locations(id) {
            found = true;
            self.pack_users.entry(loc.pack).or_default().insert(*sid);
        }
        if found {
            self.referenced.insert(*id);
        } else {
            report.push(
                Severity::Error,
                format!("{kind} blob {id}"),
                "missing: no index lists it".into(),
                vec![sid.short()],
            );
        }
        found
    }

    /// Whether every blob of the snapshot has a copy outside `bad_packs`
    /// (over the trees already read).
    fn intact(&self, root: Id, bad_packs: &HashSet<Id>) -> bool {
        let has_good_copy = |id: &Id| {
            self.index
                .locations(id)
                .any(|l| !bad_packs.contains(&l.pack))
        };
        let mut stack = vec![root];
        let mut seen = HashSet::new();
        while let Some(tid) = stack.pop() {
            if !seen.insert(tid) {
                continue;
            }
            if !has_good_copy(&tid) {
                return false;
            }
            let Some(Some(tree)) = self.trees.get(&tid) else {
                return false;
            };
            for node in &tree.nodes {
                if !node.content.iter().all(|c| has_good_copy(&c.id)) {
                    return false;
                }
                stack.extend(node.subtree);
            }
        }
        true
    }
}

/// Why a restore would refuse this tree, if it would: the same rules as
/// restore's (`Node::has_safe_name`, `Tree::duplicate_name`).
fn refusal(tree: &Tree) -> Option<String> {
    if let Some(n) = tree.unsafe_name() {
        return Some(format!(
            "holds an unsafe file name {:?} (restore refuses it)",
            n.name
        ));
    }
    tree.duplicate_name()
        .map(|n| format!("lists {:?} twice (restore refuses it)", n.name))
}

/// Check the repository; problems are reported, not returned as errors.
#[tracing::instrument(skip_all, fields(read_data = opts.read_data))]
pub async fn check(
    repo: &Repository,
    opts: CheckOptions,
    progress: Arc<Progress>,
) -> Result<CheckReport, OpsError> {
    check_with(repo, opts, Vec::new(), progress).await
}

/// [`check`] as if the index files `extra` were stored too (what `repair
/// --dry-run` would write).
pub(crate) async fn check_with(
    repo: &Repository,
    opts: CheckOptions,
    extra: Vec<(Id, IndexFile)>,
    progress: Arc<Progress>,
) -> Result<CheckReport, OpsError> {
    let mut report = CheckReport::default();
    let scoped = opts.snapshots.is_some();
    if !scoped {
        progress.set_phase("reading keys");
        for (key, why) in repo.unusable_keys().await? {
            report.push(
                Severity::Error,
                key,
                format!("cannot be used ({why}); commands skip it"),
                vec![],
            );
        }
    }
    progress.set_phase("listing packs");
    let listed: HashMap<Id, u64> = repo
        .store()
        .list(FileKind::Pack.prefix())
        .await?
        .into_iter()
        .filter_map(|o| FileKind::Pack.parse_key(&o.key).map(|id| (id, o.size)))
        .collect();
    report.packs = listed.len() as u64;

    progress.set_phase("loading indexes");
    let loaded = repo.load_index_report().await?;
    for u in &loaded.unreadable {
        if u.superseded {
            report.push(
                Severity::Warning,
                format!("index {}", u.id),
                format!(
                    "cannot be read ({}); superseded by a readable index file, so ignored",
                    u.reason
                ),
                vec![],
            );
        } else {
            report.push(
                Severity::Error,
                format!("index {}", u.id),
                format!(
                    "{}; commands skip it (`lifeboat repo repair` re-indexes its packs)",
                    u.reason
                ),
                vec![],
            );
        }
    }
    let index = if extra.is_empty() {
        loaded.index
    } else {
        let mut files = Vec::new();
        for id in &loaded.index.files {
            files.push((*id, repo.load_file::<IndexFile>(FileKind::Index, id).await?));
        }
        files.extend(extra);
        Index::from_files(files)
    };

    progress.set_phase("checking snapshots");
    let mut walk = Walk {
        repo,
        index: &index,
        trees: HashMap::new(),
        refused: HashSet::new(),
        pack_users: HashMap::new(),
        referenced: HashSet::new(),
    };
    let mut snapshot_ids = Vec::new();
    let mut roots = BTreeMap::new();
    let wanted = match &opts.snapshots {
        Some(ids) => ids.clone(),
        None => repo.list_ids(FileKind::Snapshot).await?,
    };
    let markers = if scoped {
        HashMap::new()
    } else {
        repo.damage_markers().await?
    };
    for sid in wanted {
        match repo.load_file::<Snapshot>(FileKind::Snapshot, &sid).await {
            Ok(s) => {
                walk.snapshot(&mut report, &sid, &s).await;
                roots.insert(sid, s.tree);
                snapshot_ids.push(sid);
            }
            Err(e) => report.push(
                Severity::Error,
                format!("snapshot {sid}"),
                format!("{e}; commands skip it"),
                vec![sid.short()],
            ),
        }
        if let Some(m) = markers.get(&sid) {
            report.push(
                Severity::Warning,
                format!("snapshot {sid}"),
                format!(
                    "marked damaged by `repo repair` at {}: left out of `latest` and parent selection",
                    m.time.to_rfc3339()
                ),
                vec![sid.short()],
            );
        }
    }
    report.snapshots = snapshot_ids.len() as u64;
    report.blobs_referenced = walk.referenced.len() as u64;
    let pack_users = std::mem::take(&mut walk.pack_users);
    let users = |p: &Id| -> Vec<String> {
        pack_users
            .get(p)
            .map(|s| s.iter().map(Id::short).collect())
            .unwrap_or_default()
    };

    // A check of chosen snapshots looks only at the packs they use.
    let in_scope = |p: &Id| !scoped || pack_users.contains_key(p);
    let mut bad_packs = HashSet::new();
    for (pack, size) in index.packs().iter().filter(|(p, _)| in_scope(p)) {
        match listed.get(pack) {
            None => {
                bad_packs.insert(*pack);
                report.push(
                    Severity::Error,
                    format!("pack {pack}"),
                    "missing from the store".into(),
                    users(pack),
                )
            }
            Some(actual) if actual != size => {
                bad_packs.insert(*pack);
                report.push(
                    Severity::Error,
                    format!("pack {pack}"),
                    format!("is {actual} bytes but the index says {size} (truncated or replaced)"),
                    users(pack),
                )
            }
            Some(_) => {}
        }
    }
    for pack in listed
        .keys()
        .filter(|p| !scoped && !index.packs().contains_key(*p))
    {
        report.push(
            Severity::Warning,
            format!("pack {pack}"),
            "orphan: in no index (left by an interrupted backup; prune removes it)".into(),
            vec![],
        );
    }

    if opts.read_data {
        let to_read: HashMap<Id, u64> = listed
            .iter()
            .filter(|(p, _)| in_scope(p))
            .map(|(p, n)| (*p, *n))
            .collect();
        let unreadable = read_data(repo, &index, &to_read, &users, &mut report, &progress).await?;
        bad_packs.extend(unreadable);
    }
    // A snapshot whose blobs all have a good copy is whole, even if another
    // copy's pack is damaged.
    let suspects: BTreeSet<Id> = bad_packs
        .iter()
        .filter_map(|p| pack_users.get(p))
        .flatten()
        .copied()
        .collect();
    for sid in suspects {
        if let Some(root) = roots.get(&sid) {
            if !walk.intact(*root, &bad_packs) {
                report.damaged_snapshots.insert(sid);
            }
        }
    }
    if let Some(policy) = repo.config().object_lock {
        progress.set_phase("checking object locks");
        let packs = index
            .packs()
            .keys()
            .filter(|p| listed.contains_key(*p) && in_scope(p));
        let keys = protected_keys(repo, &index, snapshot_ids.iter(), packs).await?;
        check_locks(repo, policy, keys, &mut report).await?;
        if let Some(why) = repo.store().retention_caveat() {
            report.push(
                Severity::Warning,
                repo.store().location(),
                format!("retention is reported but not verified here: {why}"),
                vec![],
            );
        }
    }
    Ok(report)
}

async fn read_data(
    repo: &Repository,
    index: &Index,
    listed: &HashMap<Id, u64>,
    users: &(dyn Fn(&Id) -> Vec<String> + Sync),
    report: &mut CheckReport,
    progress: &Progress,
) -> Result<HashSet<Id>, OpsError> {
    progress.set_phase("reading packs");
    let mut bad = HashSet::new();
    progress
        .items_total
        .store(listed.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    // What the index says each pack holds, gathered once (not per pack).
    let mut by_pack: HashMap<Id, Vec<(&Id, &BlobLocation)>> = HashMap::new();
    for (id, loc) in index.all_locations() {
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    let mut set = JoinSet::new();
    let mut pending = listed.keys().copied().collect::<Vec<_>>().into_iter();
    loop {
        while set.len() < workers {
            let Some(pack) = pending.next() else { break };
            let repo = repo.clone();
            set.spawn(async move {
                let bytes = repo.store().get(&FileKind::Pack.key(&pack)).await;
                let bytes = match bytes {
                    Ok(b) => b,
                    Err(e) => return (pack, 0, Err(RepoError::from(e))),
                };
                let n = bytes.len() as u64;
                let (key, format) = (repo.key().clone(), repo.format());
                let parsed =
                    tokio::task::spawn_blocking(move || parse_pack(&key, format, &pack, &bytes))
                        .await
                        .unwrap_or_else(|e| {
                            Err(RepoError::Malformed {
                                what: format!("pack {pack}"),
                                reason: e.to_string(),
                            })
                        });
                (pack, n, parsed)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (pack, n, parsed) = joined.map_err(|e| OpsError::Pipeline(e.to_string()))?;
        report.packs_read += 1;
        report.bytes_read += n;
        Progress::add(&progress.items_done, 1);
        Progress::add(&progress.bytes_read, n);
        match parsed {
            Err(e) => {
                bad.insert(pack);
                report.push(
                    Severity::Error,
                    format!("pack {pack}"),
                    e.to_string(),
                    users(&pack),
                )
            }
            Ok(blobs) => {
                let mut in_pack: HashMap<Id, &PackBlob> = HashMap::with_capacity(blobs.len());
                for b in &blobs {
                    in_pack.entry(b.id).or_insert(b);
                }
                for (id, loc) in by_pack.get(&pack).into_iter().flatten() {
                    let agrees = in_pack
                        .get(*id)
                        .is_some_and(|b| b.offset == loc.offset && b.length == loc.length);
                    if !agrees {
                        bad.insert(pack);
                        report.push(
                            Severity::Error,
                            format!("pack {pack}"),
                            format!("blob {id} is not where the index says"),
                            users(&pack),
                        );
                    }
                }
            }
        }
    }
    Ok(bad)
}

async fn check_locks(
    repo: &Repository,
    policy: lifeboat_repo::LockPolicy,
    keys: Vec<String>,
    report: &mut CheckReport,
) -> Result<(), OpsError> {
    let now = Utc::now();
    let mut set = JoinSet::new();
    let mut pending = keys.into_iter();
    loop {
        while set.len() < 16 {
            let Some(key) = pending.next() else { break };
            let store = repo.store().clone();
            set.spawn(async move {
                let r = store.head(&key).await;
                (key, r)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (key, head) = joined.map_err(|e| OpsError::Pipeline(e.to_string()))?;
        report.objects_lock_checked += 1;
        let info = match head {
            Ok(i) => i,
            Err(e) => {
                report.push(Severity::Error, key, e.to_string(), vec![]);
                continue;
            }
        };
        let msg = match info.retention {
            None => Some(format!(
                "has no Object Lock (policy: {} for {} days)",
                policy.mode, policy.days
            )),
            Some(r) if r.mode != policy.mode => Some(format!(
                "is locked in {} mode, policy says {}",
                r.mode, policy.mode
            )),
            Some(r) if r.until <= now => Some(format!("lock expired at {}", r.until.to_rfc3339())),
            Some(r) => {
                // Written (or last extended) at least `days` before the lock ends; an hour of slack for clocks.
                let floor = info.last_modified.and_then(|m| {
                    m.checked_add_signed(
                        Duration::days(i64::from(policy.days)) - Duration::hours(1),
                    )
                });
                match floor {
                    Some(f) if r.until < f => Some(format!(
                        "locked until {}, shorter than the policy's {} days from {}",
                        r.until.to_rfc3339(),
                        policy.days,
                        info.last_modified
                            .map(|m| m.to_rfc3339())
                            .unwrap_or_default()
                    )),
                    _ => None,
                }
            }
        };
        if let Some(m) = msg {
            report.push(Severity::Error, key, m, vec![]);
        }
    }
    Ok(())
}
