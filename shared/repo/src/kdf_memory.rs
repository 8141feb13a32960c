//! Argon2's working memory, mapped so that the kernel can back it with huge
//! pages.
//!
//! A passphrase key fills 64 MiB (docs/format.md). Taken from the heap, that
//! memory is zeroed by the allocator and faulted in 4 KiB at a time: on the
//! benchmark machine 16,000 page faults, about 50 ms of one core before the
//! lanes start, paid by every command that opens a repository (each Lambda
//! invocation included). Here it is an anonymous mapping aligned to 2 MiB
//! and advised `MADV_HUGEPAGE`, so where transparent huge pages are enabled
//! ("always" or "madvise") it is faulted in 32 huge pages. A fresh mapping
//! is zero already, so nothing is written before Argon2 fills it.
//!
//! Where there is no such mapping (another OS, or `mmap` refused), the
//! memory is an ordinary vector: the same bytes, the old cost.
//!
//! The memory holds values derived from the passphrase. It is unmapped when
//! dropped, and the kernel clears pages before it hands them to anyone else,
//! as it did when the allocator released the 64 MiB heap block.

use argon2::Block;

/// Memory for `blocks` Argon2 blocks, zeroed.
pub(crate) enum KdfMemory {
    #[cfg(target_os = "linux")]
    Mapped(mapped::Mapping),
    Heap(Vec<Block>),
}

impl KdfMemory {
    pub(crate) fn new(blocks: usize) -> Self {
        #[cfg(target_os = "linux")]
        if let Some(m) = mapped::Mapping::new(blocks) {
            return KdfMemory::Mapped(m);
        }
        KdfMemory::Heap(vec![Block::default(); blocks])
    }
}

impl AsMut<[Block]> for KdfMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        match self {
            #[cfg(target_os = "linux")]
            KdfMemory::Mapped(m) => m.blocks(),
            KdfMemory::Heap(v) => v,
        }
    }
}

#[cfg(target_os = "linux")]
mod mapped {
    #![allow(unsafe_code)]
    use argon2::Block;
    use std::ptr::NonNull;

    /// Transparent huge pages are 2 MiB on x86-64 and on arm64 with 4 KiB pages.
    const HUGE_PAGE: usize = 2 << 20;

    /// An anonymous private mapping holding `count` blocks from a
    /// 2 MiB-aligned address inside it.
    pub(crate) struct Mapping {
        base: NonNull<libc::c_void>,
        len: usize,
        blocks: NonNull<Block>,
        count: usize,
    }

    impl Mapping {
        pub(crate) fn new(count: usize) -> Option<Self> {
            let bytes = count.checked_mul(size_of::<Block>())?;
            if bytes == 0 {
                return None;
            }
            // Room to move the start up to the next 2 MiB boundary.
            let len = bytes.checked_add(HUGE_PAGE)?;
            // SAFETY: a new anonymous private mapping aliases no memory of
            // this process; the result is checked before use.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return None;
            }
            let base = NonNull::new(base)?;
            let skip = (HUGE_PAGE - base.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE;
            // SAFETY: skip < HUGE_PAGE and skip + bytes <= len, so the
            // offset stays inside the mapping.
            let start = unsafe { base.cast::<u8>().add(skip) };
            // SAFETY: start..start+bytes lies inside the mapping. The call
            // is advice only: where huge pages are off it fails or is
            // ignored, and the memory is used with 4 KiB pages.
            unsafe { libc::madvise(start.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE) };
            Some(Mapping {
                base,
                len,
                blocks: start.cast(),
                count,
            })
        }

        pub(crate) fn blocks(&mut self) -> &mut [Block] {
            // SAFETY: `blocks` is aligned to 2 MiB (more than a Block's 64
            // bytes), points at `count` blocks of mapped, readable and
            // writable memory that only this value refers to, and all-zero
            // bytes (a fresh mapping) are a valid Block.
            unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.count) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: base and len are exactly what mmap returned and took;
            // no borrow of the blocks outlives `self`.
            unsafe { libc::munmap(self.base.as_ptr(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn memory_is_zeroed_writable_and_sized() {
        let blocks = 3 * 1024 + 5;
        let mut mem = KdfMemory::new(blocks);
        let slice = mem.as_mut();
        assert_eq!(slice.len(), blocks);
        assert!(slice.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        slice[blocks - 1].as_mut()[127] = 7;
        assert_eq!(mem.as_mut()[blocks - 1].as_ref()[127], 7);
    }

    #[test]
    fn derivation_matches_the_crate_own_allocation() {
        let params = argon2::Params::new(4 * 1024, 2, 4, Some(32)).unwrap();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
        let mut mem = KdfMemory::new(argon.params().block_count());
        argon
            .hash_password_into_with_memory(b"pass", b"saltsaltsalt", &mut ours, &mut mem)
            .unwrap();
        argon
            .hash_password_into(b"pass", b"saltsaltsalt", &mut theirs)
            .unwrap();
        assert_eq!(ours, theirs);
    }
}
