//! Printing: sizes, durations, error chains, JSON, logging.

use lifeboat_store::StoreMeter;
use serde::Serialize;

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// "error: cause: root cause", each message once.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// `512 B`, `1.50 KiB`, `3.00 GiB`.
pub fn bytes(n: u64) -> String {
    lifeboat_store::binary_size(n)
}

pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A command's JSON result with what it asked of the repository's store
/// added as `store` (docs/stores.md, "What a command costs").
pub fn with_store(mut result: serde_json::Value, meter: &StoreMeter) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut result {
        map.insert("store".into(), serde_json::json!(meter.usage()));
    }
    result
}

/// The same as one line on stderr, the command's last.
pub fn print_store_line(meter: &StoreMeter) {
    eprintln!("store: {}", meter.usage());
}

/// Print warnings to stderr, saying how many more there were than shown.
pub fn print_warnings(shown: &[String], total: u64) {
    for w in shown {
        eprintln!("warning: {w}");
    }
    if total > shown.len() as u64 {
        eprintln!("warning: ... and {} more", total - shown.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
    }

    #[test]
    fn chain_skips_repeats() {
        let e = anyhow::anyhow!("root").context("outer: root");
        assert_eq!(error_chain(&e), "outer: root");
    }
}
