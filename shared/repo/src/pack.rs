//! Packs: many sealed blobs in one object.
//!
//! ```text
//! "LBPACK\0\x01"                 8 bytes: magic and pack version
//! blob 0 .. blob n-1             sealed blobs, back to back
//! header                         sealed list of 42-byte entries
//! header length                  u32 little-endian: length of the sealed header
//! ```
//! A header entry is `type u8 | compression u8 | id [32] | length u32 LE |
//! raw_length u32 LE`; the blobs' offsets follow from the lengths.
//! Blobs and header are sealed for the repository's format: in version 2
//! with associated data naming each (see [`crate::Aad`]).

use crate::{Aad, BlobType, Compression, EncodedBlob, Format, Id, MasterKey, RepoError};

/// The first 8 bytes of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"LBPACK\x00\x01";
const ENTRY_LEN: usize = 42;

/// One blob as a pack header describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackBlob {
    pub blob_type: BlobType,
    pub compression: Compression,
    pub id: Id,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// Assembles a pack in memory.
#[derive(Debug)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    blobs: Vec<PackBlob>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new(0)
    }
}

impl PackBuilder {
    pub fn new(capacity: usize) -> Self {
        Self::with_buffer(Vec::new(), capacity)
    }

    /// A builder that assembles the pack in `buffer` (emptied first), so the
    /// memory of a pack already stored is filled again instead of a fresh
    /// allocation the kernel has to fault in page by page.
    pub fn with_buffer(mut buffer: Vec<u8>, capacity: usize) -> Self {
        buffer.clear();
        buffer.reserve(capacity);
        buffer.extend_from_slice(PACK_MAGIC);
        PackBuilder {
            bytes: buffer,
            blobs: Vec::new(),
        }
    }

    pub fn add(&mut self, blob: &EncodedBlob) -> Result<(), RepoError> {
        let offset = u32::try_from(self.bytes.len())
            .map_err(|_| RepoError::malformed("pack", "larger than 4 GiB"))?;
        let length = u32::try_from(blob.sealed.len())
            .map_err(|_| RepoError::malformed("blob", "larger than 4 GiB"))?;
        self.bytes.extend_from_slice(&blob.sealed);
        self.blobs.push(PackBlob {
            blob_type: blob.blob_type,
            compression: blob.compression,
            id: blob.id,
            offset,
            length,
            raw_length: blob.raw_length,
        });
        Ok(())
    }

    /// Move every blob of `other` (a pack not yet finished) to the end of
    /// this one.
    pub fn absorb(&mut self, other: PackBuilder) -> Result<(), RepoError> {
        let shift = u32::try_from(self.bytes.len() - PACK_MAGIC.len())
            .map_err(|_| RepoError::malformed("pack", "larger than 4 GiB"))?;
        let mut blobs = Vec::with_capacity(other.blobs.len());
        for b in &other.blobs {
            let offset = b
                .offset
                .checked_add(shift)
                .ok_or_else(|| RepoError::malformed("pack", "larger than 4 GiB"))?;
            blobs.push(PackBlob { offset, ..*b });
        }
        self.bytes
            .extend_from_slice(&other.bytes[PACK_MAGIC.len()..]);
        self.blobs.extend(blobs);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Append the header, sealed for a repository of `format`, and the
    /// trailer; returns the pack id, bytes and blobs. The blobs must have
    /// been encoded for the same format.
    pub fn finish(
        mut self,
        key: &MasterKey,
        format: Format,
    ) -> Result<(Id, Vec<u8>, Vec<PackBlob>), RepoError> {
        let mut header = Vec::with_capacity(self.blobs.len() * ENTRY_LEN);
        for b in &self.blobs {
            header.push(b.blob_type.code());
            header.push(b.compression.code());
            header.extend_from_slice(&b.id.0);
            header.extend_from_slice(&b.length.to_le_bytes());
            header.extend_from_slice(&b.raw_length.to_le_bytes());
        }
        let sealed = key.seal(&header, &Aad::pack_header(format))?;
        let sealed_len = u32::try_from(sealed.len())
            .map_err(|_| RepoError::malformed("pack header", "larger than 4 GiB"))?;
        self.bytes.extend_from_slice(&sealed);
        self.bytes.extend_from_slice(&sealed_len.to_le_bytes());
        let id = Id::of_file(&self.bytes);
        Ok((id, self.bytes, self.blobs))
    }
}

/// Parse the header of a whole pack of a repository of `format`. `what`
/// names the pack in errors.
pub fn parse_pack_header(
    key: &MasterKey,
    format: Format,
    pack: &[u8],
    what: &str,
) -> Result<Vec<PackBlob>, RepoError> {
    let bad = |reason: String| RepoError::malformed(what, reason);
    if pack.len() < PACK_MAGIC.len() + 4 || &pack[..PACK_MAGIC.len()] != PACK_MAGIC {
        return Err(bad(format!(
            "does not start with the pack magic ({} bytes)",
            pack.len()
        )));
    }
    let (body, len_bytes) = pack.split_at(pack.len() - 4);
    let mut lb = [0u8; 4];
    lb.copy_from_slice(len_bytes);
    let header_len = u32::from_le_bytes(lb) as usize;
    if header_len > body.len() - PACK_MAGIC.len() {
        return Err(bad(format!(
            "header length {header_len} exceeds the pack ({} bytes)",
            pack.len()
        )));
    }
    let header_start = body.len() - header_len;
    let header = key.open(
        &body[header_start..],
        &Aad::pack_header(format),
        &format!("{what} header"),
    )?;
    if header.len() % ENTRY_LEN != 0 {
        return Err(bad(format!(
            "header of {} bytes is not whole entries",
            header.len()
        )));
    }
    let mut offset = PACK_MAGIC.len() as u64;
    let mut blobs = Vec::with_capacity(header.len() / ENTRY_LEN);
    for e in header.chunks_exact(ENTRY_LEN) {
        let blob_type =
            BlobType::from_code(e[0]).ok_or_else(|| bad(format!("blob type {}", e[0])))?;
        let compression =
            Compression::from_code(e[1]).ok_or_else(|| bad(format!("compression {}", e[1])))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[2..34]);
        let length = u32::from_le_bytes([e[34], e[35], e[36], e[37]]);
        let raw_length = u32::from_le_bytes([e[38], e[39], e[40], e[41]]);
        let end = offset + u64::from(length);
        if end > header_start as u64 {
            return Err(bad(format!("blob {} extends past the blob area", Id(id))));
        }
        blobs.push(PackBlob {
            blob_type,
            compression,
            id: Id(id),
            // Bounded by header_start, itself below 4 GiB checked above.
            offset: u32::try_from(offset).map_err(|_| bad("offset beyond 4 GiB".into()))?,
            length,
            raw_length,
        });
        offset = end;
    }
    if offset != header_start as u64 {
        return Err(bad(format!(
            "blobs end at {offset} but the header starts at {header_start}"
        )));
    }
    Ok(blobs)
}

/// Verify a whole pack: its id, its header, and every blob's content. Returns
/// the blobs, or the first problem found.
pub fn parse_pack(
    key: &MasterKey,
    format: Format,
    expected_id: &Id,
    pack: &[u8],
) -> Result<Vec<PackBlob>, RepoError> {
    let what = format!("pack {expected_id}");
    let actual = Id::of_file(pack);
    if actual != *expected_id {
        return Err(RepoError::HashMismatch {
            what,
            expected: *expected_id,
            actual,
        });
    }
    let blobs = parse_pack_header(key, format, pack, &what)?;
    for b in &blobs {
        let start = b.offset as usize;
        let sealed = &pack[start..start + b.length as usize];
        let (t, c, l) = (b.blob_type, b.compression, b.raw_length);
        crate::decode_blob(key, format, t, &b.id, c, l, sealed)?;
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_blob;
    use crate::Format::V2;

    fn build(key: &MasterKey, items: &[&[u8]]) -> (Id, Vec<u8>, Vec<PackBlob>) {
        let mut p = PackBuilder::new(1024);
        for it in items {
            let b = encode_blob(key, V2, BlobType::Data, key.blob_id(it), it, 3).unwrap();
            p.add(&b).unwrap();
        }
        p.finish(key, V2).unwrap()
    }

    #[test]
    fn pack_roundtrip() {
        let key = MasterKey::generate().unwrap();
        let (id, bytes, blobs) = build(&key, &[b"one", b"two two two two two two", b""]);
        assert_eq!(parse_pack(&key, V2, &id, &bytes).unwrap(), blobs);
        assert_eq!(blobs[0].offset, 8);
    }

    #[test]
    fn a_reused_buffer_leaves_nothing_of_its_old_pack() {
        let key = MasterKey::generate().unwrap();
        let blob = encode_blob(&key, V2, BlobType::Data, key.blob_id(b"one"), b"one", 3).unwrap();
        let mut fresh = PackBuilder::new(16);
        fresh.add(&blob).unwrap();
        let mut reused = PackBuilder::with_buffer(vec![0xAA; 4096], 16);
        reused.add(&blob).unwrap();
        // Pack headers are sealed with a random nonce: compare what precedes them.
        let (_, a, blobs_a) = fresh.finish(&key, V2).unwrap();
        let (id, b, blobs_b) = reused.finish(&key, V2).unwrap();
        assert_eq!(blobs_a, blobs_b);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[..blob.sealed.len() + 8], b[..blob.sealed.len() + 8]);
        assert_eq!(parse_pack(&key, V2, &id, &b).unwrap(), blobs_b);
    }

    #[test]
    fn an_absorbed_pack_reads_as_one_built_in_one_go() {
        let key = MasterKey::generate().unwrap();
        let items: [&[u8]; 4] = [b"one", b"two two two two", b"three", b""];
        let blobs: Vec<_> = items
            .iter()
            .map(|it| encode_blob(&key, V2, BlobType::Data, key.blob_id(it), it, 3).unwrap())
            .collect();
        let (mut first, mut second) = (PackBuilder::new(64), PackBuilder::new(64));
        for b in &blobs[..2] {
            first.add(b).unwrap();
        }
        for b in &blobs[2..] {
            second.add(b).unwrap();
        }
        first.absorb(second).unwrap();
        let (id, bytes, merged) = first.finish(&key, V2).unwrap();
        let (_, _, whole) = build(&key, &items);
        assert_eq!(merged, whole);
        assert_eq!(parse_pack(&key, V2, &id, &bytes).unwrap(), whole);
        for (b, it) in merged.iter().zip(items) {
            let sealed = &bytes[b.offset as usize..(b.offset + b.length) as usize];
            let plain = crate::blob::decode_blob(
                &key,
                V2,
                BlobType::Data,
                &b.id,
                b.compression,
                b.raw_length,
                sealed,
            );
            assert_eq!(plain.unwrap(), it);
        }
    }

    #[test]
    fn corruption_is_detected_without_panics() {
        let key = MasterKey::generate().unwrap();
        let (id, bytes, _) = build(&key, &[b"one", b"two"]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(parse_pack(&key, V2, &id, &bad).is_err());
            // Header parsing alone must not panic either.
            let _ = parse_pack_header(&key, V2, &bad, "p");
        }
        for n in 0..bytes.len() {
            assert!(parse_pack_header(&key, V2, &bytes[..n], "p").is_err());
        }
    }

    /// A version-2 pack's header and blobs do not open as version 1 (nor the
    /// other way round), and a version-1 pack still round-trips as version 1.
    #[test]
    fn a_pack_parses_only_under_the_format_it_was_written_for() {
        let key = MasterKey::generate().unwrap();
        let (id, bytes, blobs) = build(&key, &[b"one", b"two"]);
        let v1 = parse_pack(&key, Format::V1, &id, &bytes);
        assert!(matches!(v1, Err(RepoError::Decrypt { .. })), "{v1:?}");
        let mut p = PackBuilder::new(64);
        for it in [&b"one"[..], b"two"] {
            let b = encode_blob(&key, Format::V1, BlobType::Data, key.blob_id(it), it, 3);
            p.add(&b.unwrap()).unwrap();
        }
        let (id1, bytes1, blobs1) = p.finish(&key, Format::V1).unwrap();
        assert_eq!(parse_pack(&key, Format::V1, &id1, &bytes1).unwrap(), blobs1);
        assert!(parse_pack(&key, V2, &id1, &bytes1).is_err());
        assert_eq!(parse_pack(&key, V2, &id, &bytes).unwrap(), blobs);
    }
}
