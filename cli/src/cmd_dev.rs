//! `lifeboat dev ...`: tools for benchmarks and tests (hidden from help).

use crate::output::print_json;
use anyhow::Result;
use clap::Subcommand;
use lifeboat_ops::sample_data;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Generate the sample data set (logs, JSON, random files, a sparse disk image).
    GenData {
        dir: PathBuf,
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Change about FRACTION of the data set's bytes.
    Mutate {
        dir: PathBuf,
        #[arg(long, default_value_t = 0.05)]
        fraction: f64,
        #[arg(long, default_value_t = 43)]
        seed: u64,
    },
}

pub fn run(cmd: DevCommand) -> Result<u8> {
    match cmd {
        DevCommand::GenData {
            dir,
            size_mib,
            seed,
        } => {
            let s = sample_data::generate(&dir, size_mib << 20, seed)?;
            print_json(&s)?;
        }
        DevCommand::Mutate {
            dir,
            fraction,
            seed,
        } => {
            let changed = sample_data::mutate(&dir, fraction, seed)?;
            print_json(&serde_json::json!({ "changed_bytes": changed }))?;
        }
    }
    Ok(0)
}
