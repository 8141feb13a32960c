//! Blobs: `decode_blob` on
//! - mode 0: compression, raw_length and id from the input, the rest as the
//!   sealed blob;
//! - mode 1: a real blob (`encode_blob`) decoded with input-chosen wrong
//!   parameters and corruption;
//! - mode 2: an input-chosen body sealed under the key, so that the zstd
//!   decoder and the length and id checks see arbitrary bytes.
//!
//! In modes 1 and 2 `raw_length` claims between 4 MiB and the 512 MiB blob
//! limit are folded below 4 MiB: `decode_blob` allocates the claim up front,
//! which is slow under ASan (see `raw_length` in `src/lib.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{
    key, mutate, plaintext, raw_length, seed_corpus, seeds, Input, BLOB_LEN_LIMIT, FORMAT,
};
use lifeboat_repo::{decode_blob, encode_blob, Aad, BlobType, Compression, Id, MasterKey};

fuzz_target!(
    init: { seed_corpus(seeds::blob) },
    |data: &[u8]| {
        let key = key();
        let mut input = Input::new(data);
        match input.u8() % 3 {
            0 => raw(&key, &mut input),
            1 => encoded_then_corrupted(&key, &mut input),
            _ => sealed_body(&key, &mut input),
        }
    }
);

fn compression(flag: bool) -> Compression {
    if flag {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// What an accepted blob promises.
fn check(key: &MasterKey, id: &Id, raw_length: u32, plain: &[u8]) {
    assert!(
        raw_length <= BLOB_LEN_LIMIT,
        "a blob over the size limit was accepted"
    );
    assert_eq!(
        plain.len(),
        raw_length as usize,
        "accepted blob has another length"
    );
    assert_eq!(key.blob_id(plain), *id, "accepted blob has another id");
}

fn raw(key: &MasterKey, input: &mut Input) {
    let compression = compression(input.bool());
    // Unclamped: without the key no input gets past the AEAD to the allocation.
    let raw_length = input.u32();
    let id = input.id();
    let sealed = input.rest();
    if let Ok(plain) = decode_blob(
        key,
        FORMAT,
        BlobType::Data,
        &id,
        compression,
        raw_length,
        sealed,
    ) {
        check(key, &id, raw_length, &plain);
    }
}

fn encoded_then_corrupted(key: &MasterKey, input: &mut Input) {
    let blob_type = if input.bool() {
        BlobType::Tree
    } else {
        BlobType::Data
    };
    let level = 1 + i32::from(input.u8() % 3);
    let plain = plaintext(input);
    let id = key.blob_id(&plain);
    let b = encode_blob(key, FORMAT, blob_type, id, &plain, level).expect("a small blob encodes");
    assert_eq!(
        decode_blob(
            key,
            FORMAT,
            blob_type,
            &id,
            b.compression,
            b.raw_length,
            &b.sealed
        )
        .expect("a fresh blob decodes"),
        plain,
        "a fresh blob decodes to other bytes"
    );
    let choice = input.u8();
    let compression = if choice & 1 != 0 {
        compression(b.compression == Compression::None)
    } else {
        b.compression
    };
    let raw_length = match (choice >> 1) % 4 {
        0 => b.raw_length,
        1 => b.raw_length.saturating_add(u32::from(input.u8())),
        2 => b.raw_length.saturating_sub(u32::from(input.u8())),
        _ => raw_length(input.u32()),
    };
    let id = if choice & 0x10 != 0 { input.id() } else { id };
    let mut sealed = b.sealed.clone();
    if choice & 0x20 != 0 {
        mutate(&mut sealed, input);
    }
    if let Ok(got) = decode_blob(
        key,
        FORMAT,
        blob_type,
        &id,
        compression,
        raw_length,
        &sealed,
    ) {
        check(key, &id, raw_length, &got);
        assert_eq!(got, plain, "a corrupted blob decoded to other bytes");
    }
}

fn sealed_body(key: &MasterKey, input: &mut Input) {
    let compression = compression(input.bool());
    let raw_length = raw_length(input.u32());
    let id = if input.bool() {
        input.id()
    } else {
        Id([0; 32])
    };
    // Sealed for the id, so that the body gets past the AEAD.
    let aad = Aad::blob(FORMAT, BlobType::Data, &id);
    let sealed = key.seal(input.rest(), &aad).expect("sealing never fails");
    let decoded = decode_blob(
        key,
        FORMAT,
        BlobType::Data,
        &id,
        compression,
        raw_length,
        &sealed,
    );
    if let Ok(plain) = decoded {
        check(key, &id, raw_length, &plain);
    }
}
