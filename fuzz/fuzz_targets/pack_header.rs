//! Packs: `parse_pack_header` and `parse_pack` on
//! - mode 0: the raw input;
//! - mode 1: a real pack (`PackBuilder` + `encode_blob` from the input) that
//!   the input then mutates, so the fuzzer gets past the header's AEAD;
//! - mode 2: a pack whose sealed header holds input-chosen entries (real
//!   sealed blobs or junk in the blob area), to exercise the entry checks and
//!   the offset arithmetic behind the AEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{key, mutate, plaintext, raw_length, seed_corpus, seeds, Input, FORMAT};
use lifeboat_repo::{
    encode_blob, parse_pack, parse_pack_header, Aad, BlobType, Compression, Id, MasterKey,
    PackBlob, PackBuilder, PACK_MAGIC,
};

fuzz_target!(
    init: { seed_corpus(seeds::pack_header) },
    |data: &[u8]| {
        let key = key();
        let Some((&mode, rest)) = data.split_first() else { return };
        match mode % 3 {
            0 => {
                check_pack(&key, rest);
            }
            1 => built_then_mutated(&key, &mut Input::new(rest)),
            _ => crafted_header(&key, &mut Input::new(rest)),
        }
    }
);

/// Parse `pack` both ways; check what an accepted pack promises.
fn check_pack(key: &MasterKey, pack: &[u8]) -> Option<Vec<PackBlob>> {
    let header = parse_pack_header(key, FORMAT, pack, "fuzz");
    if let Ok(blobs) = &header {
        check_layout(pack, blobs);
    }
    let full = parse_pack(key, FORMAT, &Id::of_file(pack), pack);
    if let Ok(blobs) = &full {
        assert_eq!(
            Some(blobs),
            header.as_ref().ok(),
            "parse_pack and parse_pack_header disagree"
        );
    }
    full.ok()
}

/// Accepted blobs tile the area between the magic and the sealed header,
/// whose length the trailer gives.
fn check_layout(pack: &[u8], blobs: &[PackBlob]) {
    let mut next = PACK_MAGIC.len() as u64;
    for b in blobs {
        assert_eq!(u64::from(b.offset), next, "blob offsets are not contiguous");
        next += u64::from(b.length);
    }
    let n = pack.len();
    assert!(n >= 4 && next + 4 <= n as u64, "blobs run into the trailer");
    let trailer = u32::from_le_bytes([pack[n - 4], pack[n - 3], pack[n - 2], pack[n - 1]]);
    assert_eq!(
        next + u64::from(trailer) + 4,
        n as u64,
        "blobs do not end where the header starts"
    );
}

fn built_then_mutated(key: &MasterKey, input: &mut Input) {
    let count = input.u8() % 5;
    let level = 1 + i32::from(input.u8() % 3);
    let mut builder = PackBuilder::new(0);
    for _ in 0..count {
        let blob_type = if input.bool() {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        let plain = plaintext(input);
        let b = encode_blob(key, FORMAT, blob_type, key.blob_id(&plain), &plain, level)
            .expect("a small blob encodes");
        builder.add(&b).expect("a small blob fits a pack");
    }
    let (id, bytes, blobs) = builder.finish(key, FORMAT).expect("a small pack finishes");
    assert_eq!(
        parse_pack(key, FORMAT, &id, &bytes).expect("a fresh pack parses"),
        blobs,
        "a fresh pack parses to other blobs"
    );
    let mut mutated = bytes.clone();
    mutate(&mut mutated, input);
    let against_old_id = parse_pack(key, FORMAT, &id, &mutated);
    if mutated != bytes {
        assert!(
            against_old_id.is_err(),
            "a changed pack still matches its id"
        );
    }
    check_pack(key, &mutated);
}

struct Entry {
    blob_type: u8,
    compression: u8,
    id: Id,
    length: u32,
    raw_length: u32,
}

fn crafted_header(key: &MasterKey, input: &mut Input) {
    // The blob area: authentic sealed blobs, so that entries can point at
    // them, or junk.
    let mut area = Vec::new();
    let mut real = Vec::new();
    for _ in 0..input.u8() % 4 {
        if input.bool() {
            let plain = plaintext(input);
            let b = encode_blob(key, FORMAT, BlobType::Data, key.blob_id(&plain), &plain, 1)
                .expect("a small blob encodes");
            area.extend_from_slice(&b.sealed);
            real.push(Entry {
                blob_type: b.blob_type.code(),
                compression: b.compression.code(),
                id: b.id,
                length: b.sealed.len() as u32,
                raw_length: b.raw_length,
            });
        } else {
            let n = usize::from(input.u8());
            let junk = input.bytes(n);
            area.extend_from_slice(junk);
            real.push(Entry {
                blob_type: 0,
                compression: Compression::None.code(),
                id: Id([0; 32]),
                length: junk.len() as u32,
                raw_length: 0,
            });
        }
    }
    // Header entries: each starts from the matching real one and may override
    // any field.
    let mut header = Vec::new();
    for i in 0..usize::from(input.u8() % 6) {
        let base = real.get(i).unwrap_or(&Entry {
            blob_type: 0,
            compression: 0,
            id: Id([0; 32]),
            length: 0,
            raw_length: 0,
        });
        let flags = input.u8();
        header.push(if flags & 1 != 0 {
            input.u8()
        } else {
            base.blob_type
        });
        header.push(if flags & 2 != 0 {
            input.u8()
        } else {
            base.compression
        });
        header.extend_from_slice(&if flags & 4 != 0 { input.id() } else { base.id }.0);
        let length = if flags & 8 != 0 {
            input.u32()
        } else {
            base.length
        };
        header.extend_from_slice(&length.to_le_bytes());
        let raw_length = if flags & 16 != 0 {
            raw_length(input.u32())
        } else {
            base.raw_length
        };
        header.extend_from_slice(&raw_length.to_le_bytes());
    }
    if input.bool() {
        // A partial entry.
        let n = usize::from(input.u8() % 42);
        header.extend_from_slice(input.bytes(n));
    }
    let sealed = key
        .seal(&header, &Aad::pack_header(FORMAT))
        .expect("sealing never fails");
    let mut pack = PACK_MAGIC.to_vec();
    pack.extend_from_slice(&area);
    pack.extend_from_slice(&sealed);
    let trailer = if input.bool() {
        input.u32()
    } else {
        sealed.len() as u32
    };
    pack.extend_from_slice(&trailer.to_le_bytes());
    check_pack(key, &pack);
}
