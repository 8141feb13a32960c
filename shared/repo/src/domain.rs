//! Domain separation: the associated data every sealed object is bound to.
//!
//! Format version 1 seals everything with empty associated data, so a sealed
//! blob and a sealed file are interchangeable: a data blob whose plaintext a
//! tenant chose (a file holding snapshot JSON) decrypts as a snapshot once
//! its bytes are copied to `snapshots/<id>`. Version 2 binds each object's
//! kind, and a blob's type and id, into its tag, so such a copy fails to open.
//! The exact bytes are specified in `docs/format.md`.

use crate::{BlobType, FileKind, Id, RepoError};

/// A repository's format version, as far as sealing is concerned. Every
/// object in a repository is sealed under the version in its `config`;
/// version-1 repositories keep being read and written as version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Version 1: empty associated data everywhere.
    V1,
    /// Version 2: associated data naming the object's kind.
    V2,
}

impl Format {
    /// What new repositories get.
    pub const LATEST: Format = Format::V2;

    /// The format of the `version` of a `config` or key object; `what`
    /// names the object in errors.
    pub fn from_version(version: u32, what: &str) -> Result<Format, RepoError> {
        match version {
            1 => Ok(Format::V1),
            2 => Ok(Format::V2),
            v if v > crate::FORMAT_VERSION => Err(RepoError::UnsupportedVersion {
                found: v,
                supported: crate::FORMAT_VERSION,
            }),
            v => Err(RepoError::malformed(what, format!("version {v}"))),
        }
    }

    /// The `version` number written in `config` and key objects.
    pub fn version(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
        }
    }
}

/// Every version-2 associated data starts with this.
const V2_PREFIX: &[u8] = b"lifeboat v2 ";
/// Room for the longest associated data: prefix, `tree blob `, 32-byte id.
const MAX_LEN: usize = 64;

/// The associated data of one sealed object, built on the stack (no
/// allocation on the blob hot path).
#[derive(Clone, Copy)]
pub struct Aad {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl std::fmt::Debug for Aad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aad({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Aad {
    /// `parts` joined after the version-2 prefix; empty for version 1.
    fn build(format: Format, parts: &[&[u8]]) -> Aad {
        let mut aad = Aad {
            bytes: [0; MAX_LEN],
            len: 0,
        };
        if format == Format::V1 {
            return aad;
        }
        for part in std::iter::once(&V2_PREFIX).chain(parts) {
            // Every caller's parts are fixed strings and one id: they fit.
            let end = (aad.len + part.len()).min(MAX_LEN);
            aad.bytes[aad.len..end].copy_from_slice(&part[..end - aad.len]);
            aad.len = end;
        }
        aad
    }

    /// A sealed file (index, snapshot, report): `lifeboat v2 <kind>`, where
    /// `<kind>` is [`FileKind::name`]. A file's id is the hash of its sealed
    /// bytes, so it cannot be bound as well.
    pub fn file(format: Format, kind: FileKind) -> Aad {
        Aad::build(format, &[kind.name().as_bytes()])
    }

    /// A blob: `lifeboat v2 data blob ` or `lifeboat v2 tree blob `, then the
    /// blob id's 32 raw bytes. Not the pack, so a blob can move between packs.
    pub fn blob(format: Format, blob_type: BlobType, id: &Id) -> Aad {
        let kind: &[u8] = match blob_type {
            BlobType::Data => b"data blob ",
            BlobType::Tree => b"tree blob ",
        };
        Aad::build(format, &[kind, &id.0])
    }

    /// A pack's header: `lifeboat v2 pack header`.
    pub fn pack_header(format: Format) -> Aad {
        Aad::build(format, &[b"pack header"])
    }

    /// The master key wrapped in a key object: `lifeboat v2 wrapped master key`.
    pub fn wrapped_key(format: Format) -> Aad {
        Aad::build(format, &[b"wrapped master key"])
    }

    /// A key revocation marker (`revoked/<key id>`):
    /// `lifeboat v2 key revocation`.
    pub fn revocation(format: Format) -> Aad {
        Aad::build(format, &[b"key revocation"])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes that docs/format.md promises.
    #[test]
    fn version_2_associated_data_is_what_the_format_document_says() {
        let id = Id([0xab; 32]);
        let mut data = b"lifeboat v2 data blob ".to_vec();
        data.extend_from_slice(&[0xab; 32]);
        assert_eq!(Aad::blob(Format::V2, BlobType::Data, &id).as_bytes(), data);
        let mut tree = b"lifeboat v2 tree blob ".to_vec();
        tree.extend_from_slice(&[0xab; 32]);
        assert_eq!(Aad::blob(Format::V2, BlobType::Tree, &id).as_bytes(), tree);
        assert_eq!(tree.len(), 54);
        let files = [
            (FileKind::Snapshot, &b"lifeboat v2 snapshot"[..]),
            (FileKind::Index, &b"lifeboat v2 index"[..]),
            (FileKind::Report, &b"lifeboat v2 report"[..]),
        ];
        for (kind, expected) in files {
            assert_eq!(Aad::file(Format::V2, kind).as_bytes(), expected);
        }
        assert_eq!(
            Aad::pack_header(Format::V2).as_bytes(),
            b"lifeboat v2 pack header"
        );
        assert_eq!(
            Aad::wrapped_key(Format::V2).as_bytes(),
            b"lifeboat v2 wrapped master key"
        );
    }

    #[test]
    fn version_1_associated_data_is_empty() {
        let id = Id([7; 32]);
        assert!(Aad::blob(Format::V1, BlobType::Data, &id)
            .as_bytes()
            .is_empty());
        assert!(Aad::file(Format::V1, FileKind::Snapshot)
            .as_bytes()
            .is_empty());
        assert!(Aad::pack_header(Format::V1).as_bytes().is_empty());
        assert!(Aad::wrapped_key(Format::V1).as_bytes().is_empty());
    }

    #[test]
    fn versions_map_both_ways_and_others_are_refused() {
        for f in [Format::V1, Format::V2] {
            assert_eq!(Format::from_version(f.version(), "x").unwrap(), f);
        }
        assert!(matches!(
            Format::from_version(0, "x"),
            Err(RepoError::Malformed { .. })
        ));
        assert!(matches!(
            Format::from_version(3, "x"),
            Err(RepoError::UnsupportedVersion { found: 3, .. })
        ));
    }
}
