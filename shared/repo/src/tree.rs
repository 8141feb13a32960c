use crate::{Id, RepoError};
use serde::{Deserialize, Serialize};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The kind of a file system node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    File,
    Dir,
    Symlink,
    /// A block device. Given as a backup source, its content is stored like a
    /// file's; met inside a directory, only the node itself is recorded.
    Blockdev,
    Chardev,
    Fifo,
    Socket,
}

/// One chunk of a file's content and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: Id,
    /// Byte offset in the file. Bytes covered by no chunk are zero (holes).
    pub offset: u64,
}

/// An entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name, as UTF-8 (lossy when `name_bytes` is present).
    pub name: String,
    /// The exact name bytes, hex, only when the name is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub name_bytes: Option<Vec<u8>>,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time and inode: used only to recognise unchanged files.
    #[serde(default)]
    pub ctime_ns: i64,
    #[serde(default)]
    pub inode: u64,
    /// Content length for files and block devices, 0 otherwise.
    #[serde(default)]
    pub size: u64,
    /// Content chunks in increasing offset order (files, block devices given as sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ChunkRef>,
    /// The directory's own tree (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Symlink target, as UTF-8 (lossy when `target_bytes` is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub target_bytes: Option<Vec<u8>>,
    /// Device number (character and block devices).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Node {
    /// A node with the given name and type and every other field zero.
    pub fn new(name: &OsStr, node_type: NodeType) -> Self {
        let (name, name_bytes) = split_os(name);
        Node {
            name,
            name_bytes,
            node_type,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            target_bytes: None,
            rdev: 0,
        }
    }

    pub fn os_name(&self) -> OsString {
        join_os(&self.name, &self.name_bytes)
    }

    pub fn set_target(&mut self, target: &OsStr) {
        let (t, b) = split_os(target);
        self.target = Some(t);
        self.target_bytes = b;
    }

    pub fn os_target(&self) -> Option<OsString> {
        self.target.as_ref().map(|t| join_os(t, &self.target_bytes))
    }

    /// Whether the name is a single, safe path component (no `/`, not `.` or `..`).
    pub fn has_safe_name(&self) -> bool {
        let n = self.os_name();
        let b = n.as_bytes();
        !b.is_empty() && b != b"." && b != b".." && !b.contains(&b'/') && !b.contains(&0)
    }
}

fn split_os(s: &OsStr) -> (String, Option<Vec<u8>>) {
    match s.to_str() {
        Some(u) => (u.to_string(), None),
        None => (
            s.to_string_lossy().into_owned(),
            Some(s.as_bytes().to_vec()),
        ),
    }
}

fn join_os(s: &str, bytes: &Option<Vec<u8>>) -> OsString {
    match bytes {
        Some(b) => OsString::from_vec(b.clone()),
        None => OsString::from(s),
    }
}

/// A directory listing: the plaintext of a tree blob (canonical JSON, nodes sorted by name bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort the nodes and serialize canonically, so equal directories give equal blobs.
    pub fn to_json(&mut self) -> Result<Vec<u8>, RepoError> {
        self.nodes.sort_by_key(|a| a.os_name());
        serde_json::to_vec(self).map_err(|e| RepoError::malformed("tree", e))
    }

    pub fn parse(bytes: &[u8], id: &Id) -> Result<Self, RepoError> {
        serde_json::from_slice(bytes).map_err(|e| RepoError::malformed(format!("tree {id}"), e))
    }

    /// The first node whose name is listed twice. Restore refuses such a
    /// tree (a symlink and a directory of one name could lead it outside
    /// the target), and check reports it.
    pub fn duplicate_name(&self) -> Option<&Node> {
        let mut names = std::collections::HashSet::new();
        self.nodes.iter().find(|n| !names.insert(n.os_name()))
    }

    /// The first node whose name is not a single safe path component (see
    /// [`Node::has_safe_name`]).
    pub fn unsafe_name(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| !n.has_safe_name())
    }
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_names_roundtrip() {
        let raw = OsStr::from_bytes(b"caf\xe9");
        let mut n = Node::new(raw, NodeType::Symlink);
        n.set_target(OsStr::from_bytes(b"../t\xff"));
        let json = serde_json::to_string(&n).unwrap();
        let back: Node = serde_json::from_str(&json).unwrap();
        assert_eq!(back.os_name(), raw);
        assert_eq!(back.os_target().unwrap(), OsStr::from_bytes(b"../t\xff"));
        assert!(back.has_safe_name());
    }

    #[test]
    fn unsafe_names_are_recognised() {
        for bad in ["..", ".", "a/b", ""] {
            assert!(
                !Node::new(OsStr::new(bad), NodeType::File).has_safe_name(),
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicate_and_unsafe_names_are_found() {
        let tree = |names: &[&[u8]]| Tree {
            nodes: names
                .iter()
                .map(|n| Node::new(OsStr::from_bytes(n), NodeType::File))
                .collect(),
        };
        assert!(tree(&[b"a", b"b"]).duplicate_name().is_none());
        assert!(tree(&[b"a", b"b"]).unsafe_name().is_none());
        assert_eq!(
            tree(&[b"a", b"b", b"a"]).duplicate_name().unwrap().name,
            "a"
        );
        // Equal bytes are equal names, however the name is stored.
        assert!(tree(&[b"\xff", b"\xff"]).duplicate_name().is_some());
        assert_eq!(tree(&[b"ok", b".."]).unsafe_name().unwrap().name, "..");
    }

    #[test]
    fn canonical_order() {
        let mut a = Tree {
            nodes: vec![
                Node::new(OsStr::new("b"), NodeType::File),
                Node::new(OsStr::new("a"), NodeType::File),
            ],
        };
        let mut b = Tree {
            nodes: vec![
                Node::new(OsStr::new("a"), NodeType::File),
                Node::new(OsStr::new("b"), NodeType::File),
            ],
        };
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    }
}
