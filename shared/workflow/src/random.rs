//! Randomness for `States.UUID`, `States.MathRandom` and full retry jitter,
//! from the operating system (`getrandom`).

/// A random `u64`.
pub(crate) fn u64() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// A random number in `[0, 1)`, or `None` when the system has no randomness.
pub(crate) fn unit() -> Option<f64> {
    // 53 random bits: every value is exactly representable.
    u64().ok().map(|r| (r >> 11) as f64 / (1u64 << 53) as f64)
}

/// A deterministic value from a seed (SplitMix64), for seeded `States.MathRandom`.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version 4 (random) UUID in its canonical lower-case form.
pub(crate) fn uuid_v4() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}
