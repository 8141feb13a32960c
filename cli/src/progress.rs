//! Progress display: a bar on a terminal, a log line every 10 s otherwise.

use crate::output::bytes;
use indicatif::{ProgressBar, ProgressStyle};
use lifeboat_ops::Progress;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Renders a [`Progress`] until dropped or finished.
#[derive(Debug)]
pub struct Reporter {
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn start(progress: Arc<Progress>, quiet: bool) -> Self {
        if quiet {
            return Reporter {
                task: None,
                bar: None,
            };
        }
        let started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let b = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    b.set_message(line(&progress, started));
                    b.tick();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            Reporter {
                task: Some(task),
                bar: Some(bar),
            }
        } else {
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    eprintln!(
                        "[{:>6.1}s] {}",
                        started.elapsed().as_secs_f64(),
                        line(&progress, started)
                    );
                }
            });
            Reporter {
                task: Some(task),
                bar: None,
            }
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn line(p: &Progress, started: Instant) -> String {
    let s = p.snapshot();
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut out = s.phase.clone();
    if s.bytes_read > 0 {
        out += &format!(
            ": {} files, {} read ({}/s), {} new, {} stored",
            s.files,
            bytes(s.bytes_read),
            bytes((s.bytes_read as f64 / secs) as u64),
            bytes(s.bytes_new),
            bytes(s.bytes_stored)
        );
    }
    if s.bytes_written > 0 {
        out += &format!(
            ": {} written ({}/s)",
            bytes(s.bytes_written),
            bytes((s.bytes_written as f64 / secs) as u64)
        );
    }
    if s.items_total > 0 {
        out += &format!(" [{}/{}]", s.items_done, s.items_total);
    }
    out
}
