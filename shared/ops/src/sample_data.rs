//! A reproducible sample data set, for `lifeboat demo` and the benchmark:
//! compressible logs and JSON, incompressible random files, and a mostly empty
//! "database volume" image with scattered 4 KiB pages; and a mutation that
//! changes a given share of its bytes, as a day of use would.

use crate::OpsError;
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

const PAGE: u64 = 4096;
const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "order",
    "payment",
    "retry",
    "timeout",
    "cache",
    "miss",
    "hit",
    "shard",
    "replica",
    "commit",
    "rollback",
    "session",
    "token",
    "refresh",
    "upstream",
    "latency",
    "ms",
    "bytes",
    "GET",
    "POST",
    "/api/v1/orders",
    "/healthz",
    "status",
    "200",
    "404",
    "503",
    "pod",
    "node",
    "volume",
    "mounted",
    "snapshot",
    "ready",
    "backoff",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];

/// A fast deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SampleStats {
    pub files: u64,
    /// Sum of file lengths (the image counts with its full, sparse length).
    pub logical_bytes: u64,
    /// Bytes actually written (holes excluded).
    pub written_bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> OpsError + '_ {
    move |e| OpsError::io(path, e)
}

pub(crate) fn log_line(rng: &mut Rng, out: &mut Vec<u8>, t: u64) {
    let level = LEVELS[rng.below(LEVELS.len() as u64) as usize];
    let _ = write!(
        out,
        "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z {level:<5} ",
        1 + (t / 86400) % 28,
        (t / 3600) % 24,
        (t / 60) % 60,
        t % 60,
        rng.below(1000)
    );
    for _ in 0..(4 + rng.below(10)) {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    let _ = writeln!(
        out,
        "id={} took={}ms",
        rng.below(1_000_000),
        rng.below(5000)
    );
}

pub(crate) fn json_doc(rng: &mut Rng, out: &mut Vec<u8>, i: u64) {
    let _ = write!(
        out,
        "{{\"id\":{i},\"customer\":\"cust-{}\",\"status\":\"{}\",\"items\":[",
        rng.below(50_000),
        WORDS[rng.below(WORDS.len() as u64) as usize]
    );
    for k in 0..(1 + rng.below(5)) {
        if k > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            "{{\"sku\":\"SKU-{}\",\"qty\":{},\"price\":{}.{:02}}}",
            rng.below(10_000),
            1 + rng.below(9),
            rng.below(500),
            rng.below(100)
        );
    }
    let _ = writeln!(out, "],\"region\":\"eu-west-{}\"}}", 1 + rng.below(3));
}

fn write_text(
    path: &Path,
    bytes: u64,
    rng: &mut Rng,
    json: bool,
    start: u64,
) -> Result<u64, OpsError> {
    let f = File::create(path).map_err(io(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut written = 0;
    let mut i = start;
    while written < bytes {
        buf.clear();
        while buf.len() < 1 << 15 {
            if json {
                json_doc(rng, &mut buf, i);
            } else {
                log_line(rng, &mut buf, i);
            }
            i += 1;
        }
        w.write_all(&buf).map_err(io(path))?;
        written += buf.len() as u64;
    }
    w.flush().map_err(io(path))?;
    Ok(written)
}

fn write_random(path: &Path, bytes: u64, rng: &mut Rng) -> Result<(), OpsError> {
    let mut f = File::create(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).map_err(io(path))?;
        left -= n as u64;
    }
    Ok(())
}

/// Generate about `total` logical bytes under `dir`.
pub fn generate(dir: &Path, total: u64, seed: u64) -> Result<SampleStats, OpsError> {
    let mut rng = Rng::new(seed);
    let mut st = SampleStats::default();
    for sub in [
        "logs",
        "json",
        "random/small",
        "random/large",
        "db",
        "config",
    ] {
        fs::create_dir_all(dir.join(sub)).map_err(io(dir))?;
    }
    // 30% logs, 15% JSON, 30% random, 25% image (of which 1/8 written).
    let logs = total * 30 / 100;
    let n_logs = (logs / (8 << 20)).max(1);
    for i in 0..n_logs {
        let p = dir.join(format!("logs/app-{i:03}.log"));
        st.written_bytes += write_text(&p, logs / n_logs, &mut rng, false, i * 1_000_000)?;
        st.files += 1;
    }
    let json = total * 15 / 100;
    let n_json = (json / (4 << 20)).max(1);
    for i in 0..n_json {
        let p = dir.join(format!("json/orders-{i:03}.jsonl"));
        st.written_bytes += write_text(&p, json / n_json, &mut rng, true, i * 1_000_000)?;
        st.files += 1;
    }
    let random = total * 30 / 100;
    let small_total = random / 10;
    let mut made = 0;
    let mut i = 0;
    while made < small_total {
        let n = 1024 + rng.below(64 * 1024);
        write_random(
            &dir.join(format!("random/small/blob-{i:05}.bin")),
            n,
            &mut rng,
        )?;
        made += n;
        i += 1;
        st.files += 1;
    }
    st.written_bytes += made;
    let large_total = random - made.min(random);
    let n_large = (large_total / (32 << 20)).max(1);
    for i in 0..n_large {
        write_random(
            &dir.join(format!("random/large/media-{i:03}.bin")),
            large_total / n_large,
            &mut rng,
        )?;
        st.written_bytes += large_total / n_large;
        st.files += 1;
    }
    let image = (total * 25 / 100) / PAGE * PAGE;
    let p = dir.join("db/volume.img");
    let f = File::create(&p).map_err(io(&p))?;
    f.set_len(image).map_err(io(&p))?;
    let pages = image / PAGE / 8;
    let mut page = vec![0u8; PAGE as usize];
    for _ in 0..pages {
        rng.fill(&mut page);
        f.write_all_at(&page, rng.below(image / PAGE) * PAGE)
            .map_err(io(&p))?;
    }
    st.written_bytes += pages * PAGE;
    st.files += 1;
    let cfg = dir.join("config/app.yaml");
    fs::write(&cfg, b"replicas: 3\nimage: shop:1.4.2\n").map_err(io(&cfg))?;
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).map_err(io(&cfg))?;
    let _ = fs::remove_file(dir.join("config/current"));
    std::os::unix::fs::symlink("app.yaml", dir.join("config/current")).map_err(io(dir))?;
    st.files += 2;
    st.logical_bytes = dir_size(dir)?;
    Ok(st)
}

/// Change about `fraction` of the logical bytes: append to logs, rewrite some
/// random files, scribble on scattered image pages, add and delete files.
pub fn mutate(dir: &Path, fraction: f64, seed: u64) -> Result<u64, OpsError> {
    let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let total = dir_size(dir)?;
    let budget = (total as f64 * fraction) as u64;
    let mut changed = 0u64;
    // A third: log appends.
    let mut logs: Vec<_> = list(&dir.join("logs"))?;
    logs.sort();
    for p in logs.iter().take(4) {
        let mut f = OpenOptions::new().append(true).open(p).map_err(io(p))?;
        let mut buf = Vec::new();
        while (buf.len() as u64) < budget / 3 / 4 {
            log_line(&mut rng, &mut buf, 9_000_000);
        }
        f.write_all(&buf).map_err(io(p))?;
        changed += buf.len() as u64;
    }
    // A third: rewritten random files, and one new file.
    let mut smalls: Vec<_> = list(&dir.join("random/small"))?;
    smalls.sort();
    let mut rewritten = 0;
    for p in smalls.iter().step_by(7) {
        if rewritten >= budget / 6 {
            break;
        }
        let n = fs::metadata(p).map_err(io(p))?.len();
        write_random(p, n, &mut rng)?;
        rewritten += n;
    }
    let newfile = dir.join("random/large/new-upload.bin");
    write_random(&newfile, budget / 6, &mut rng)?;
    changed += rewritten + budget / 6;
    // A third: scattered image pages.
    let img = dir.join("db/volume.img");
    if let Ok(f) = OpenOptions::new().write(true).open(&img) {
        let len = f.metadata().map_err(io(&img))?.len();
        let mut page = vec![0u8; PAGE as usize];
        for _ in 0..(budget / 3 / PAGE) {
            rng.fill(&mut page);
            f.write_all_at(&page, rng.below((len / PAGE).max(1)) * PAGE)
                .map_err(io(&img))?;
            changed += PAGE;
        }
    }
    if let Some(p) = smalls.last() {
        fs::remove_file(p).map_err(io(p))?;
    }
    Ok(changed)
}

fn list(dir: &Path) -> Result<Vec<std::path::PathBuf>, OpsError> {
    Ok(fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect())
}

fn dir_size(dir: &Path) -> Result<u64, OpsError> {
    let mut total = 0;
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let m = fs::symlink_metadata(e.path()).map_err(io(dir))?;
        if m.is_dir() {
            total += dir_size(&e.path())?;
        } else if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_mix_reproducibly() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = generate(a.path(), 8 << 20, 1).unwrap();
        let sb = generate(b.path(), 8 << 20, 1).unwrap();
        assert_eq!(sa.logical_bytes, sb.logical_bytes);
        assert!(
            sa.logical_bytes > 6 << 20 && sa.logical_bytes < 10 << 20,
            "{}",
            sa.logical_bytes
        );
        assert_eq!(
            fs::read(a.path().join("logs/app-000.log")).unwrap(),
            fs::read(b.path().join("logs/app-000.log")).unwrap()
        );
        let changed = mutate(a.path(), 0.05, 2).unwrap();
        assert!(changed > 0);
    }
}
