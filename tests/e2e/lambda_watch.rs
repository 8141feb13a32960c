//! A real function binary under `cargo lambda watch`: `lifeboat-report` is
//! built and run by cargo-lambda's emulator, bound to 127.0.0.1 only, and
//! invoked over the emulated Lambda API, so the event goes through the real
//! Runtime API client (`lambda_runtime`) and the error reaches the caller with
//! the step's error name as `errorType` (docs/workflows.md, Errors).
//!
//! `cargo test -p lifeboat-tests --test lambda_watch -- --nocapture`
//!
//! cargo-lambda comes from `tests/substrate/cargo-lambda path` (installed once
//! from PyPI into a cached virtual environment). The first invocation waits for
//! `cargo run` to build the function in the inherited `CARGO_TARGET_DIR`, which
//! can take minutes. Traffic stays on loopback: the function's repository is a
//! local directory and the event has no `reply_to` queue.
//! `LIFEBOAT_SKIP_LAMBDA=1` skips the test; without it a missing tool fails it.

use anyhow::{bail, ensure, Context, Result};
use lifeboat_repo::{Credential, FileKind, Id, InitOptions, Repository};
use lifeboat_store::LocalStore;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The function under test (package and binary).
const FUNCTION: &str = "lifeboat-report";
const PASSWORD: &str = "lambda-watch-test-passphrase";
/// The first invocation waits for the function to be built (and for any other
/// cargo holding the target directory's lock).
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long cargo-lambda may take to accept connections on its port.
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long cargo-lambda gets to stop the function after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of cargo-lambda's output kept for error messages.
const LOG_LINES: usize = 60;
/// `sh -c WATCHDOG lambda-watch <test pid> <command>...`: run the command as
/// the process group's leader beside a watchdog that sends SIGTERM to the
/// whole group once the test process is gone.
const WATCHDOG: &str = r#"test_pid=$1; shift
(while kill -0 "$test_pid" 2>/dev/null; do sleep 1; done; kill -TERM 0) </dev/null >/dev/null 2>&1 &
exec "$@""#;

fn progress(message: impl std::fmt::Display) {
    eprintln!("lambda_watch: {message}");
}

#[test]
fn report_function_answers_under_cargo_lambda_watch() -> Result<()> {
    if std::env::var("LIFEBOAT_SKIP_LAMBDA").as_deref() == Ok("1") {
        progress(
            "SKIPPED: LIFEBOAT_SKIP_LAMBDA=1 (unset it to run lifeboat-report under cargo lambda watch)",
        );
        return Ok(());
    }
    let root = lifeboat_tests::repo_root();
    let cargo_lambda = cargo_lambda(&root)?;

    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(create_repository(&repo))?;
    progress(format!("created a repository at {}", repo.display()));

    let port = free_port()?;
    let watch = Watch::start(&cargo_lambda, &root, port, &repo)?;
    watch.wait_serving()?;
    watch.check_loopback_only()?;

    // (a) The failure of a backup: reported as failed and stored.
    let event = failure_event(&root)?;
    progress("invoking with events/steps/report.backup-failure.json (the first invocation waits for the build)");
    let started = Instant::now();
    let answer = watch.invoke(&event, FIRST_INVOKE_TIMEOUT)?;
    progress(format!(
        "first invocation answered after {:.1} s (build and start included): HTTP {}",
        started.elapsed().as_secs_f64(),
        answer.status
    ));
    let report = answer.result()?;
    ensure!(
        report["outcome"] == "failed",
        "outcome is {}, not \"failed\": {report}",
        report["outcome"]
    );
    ensure!(report["kind"] == "workflow", "kind: {report}");
    ensure!(report["action"] == "backup", "action: {report}");
    ensure!(report["cluster"] == "shop-prod", "cluster: {report}");
    ensure!(
        report["failure"]["Error"] == "Lifeboat.Failed",
        "the report does not carry the Catch's failure: {report}"
    );
    let id: Id = report["report"]
        .as_str()
        .with_context(|| {
            format!(
                "the report was not stored (no `report` id; see the function's log above): {report}"
            )
        })?
        .parse()
        .map_err(|e| anyhow::anyhow!("`report` is not an id ({e}): {report}"))?;
    let file = repo.join(FileKind::Report.key(&id));
    ensure!(
        file.is_file(),
        "the answer names report {id}, but {} does not exist",
        file.display()
    );
    let stored: Value = rt.block_on(load_report(&repo, &id))?;
    ensure!(
        stored["outcome"] == "failed" && stored["failure"] == report["failure"],
        "the stored report differs from the answer: {stored}"
    );
    progress(format!("report {id} stored at {}", file.display()));

    // (b) Not a valid state: refused with the step's error name and the field.
    let invalid = json!({ "version": 1, "action": "backup" });
    let started = Instant::now();
    let answer = watch.invoke(&invalid, INVOKE_TIMEOUT)?;
    progress(format!(
        "second invocation answered after {:.2} s: HTTP {}",
        started.elapsed().as_secs_f64(),
        answer.status
    ));
    let (error_type, message) = answer.error()?;
    ensure!(
        error_type == "Lifeboat.InvalidInput",
        "errorType is {error_type:?}, not \"Lifeboat.InvalidInput\" (message: {message})"
    );
    ensure!(
        message.contains("`cluster`"),
        "the error message does not name the field `cluster`: {message}"
    );
    progress(format!("invalid state refused: {error_type}: {message}"));

    drop(watch);
    Ok(())
}

/// The cargo-lambda executable, installed on first use.
fn cargo_lambda(root: &Path) -> Result<PathBuf> {
    let script = root.join("tests/substrate/cargo-lambda");
    progress(format!("{} path", script.display()));
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(
        out.status.success(),
        "cargo-lambda is not available: {} path failed ({}); it installs cargo-lambda from PyPI \
         (needs python3 with venv); set LIFEBOAT_SKIP_LAMBDA=1 to skip this test",
        script.display(),
        out.status
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ensure!(
        path.is_file(),
        "{} path printed {:?}, which is not a file",
        script.display(),
        path
    );
    Ok(path)
}

async fn create_repository(path: &Path) -> Result<()> {
    let store = Arc::new(LocalStore::new(path));
    Repository::init(
        store,
        &Credential::Passphrase(PASSWORD.into()),
        InitOptions::default(),
    )
    .await
    .with_context(|| format!("creating a repository at {}", path.display()))?;
    Ok(())
}

async fn load_report(path: &Path, id: &Id) -> Result<Value> {
    let store = Arc::new(LocalStore::new(path));
    let repo = Repository::open(store, &Credential::Passphrase(PASSWORD.into())).await?;
    Ok(repo.load_file(FileKind::Report, id).await?)
}

/// The sample state of a backup whose verify step failed, without its
/// `reply_to` queue: the report would be sent there, off this machine.
fn failure_event(root: &Path) -> Result<Value> {
    let path = root.join("events/steps/report.backup-failure.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut event: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let map = event
        .as_object_mut()
        .with_context(|| format!("{} is not a JSON object", path.display()))?;
    ensure!(
        map.contains_key("failure"),
        "{} has no `failure`",
        path.display()
    );
    map.remove("reply_to");
    Ok(event)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `cargo lambda watch` in its own process group; dropping it stops that
/// group and every process group it started (the function runs in one of
/// its own), so no process outlives the test. A watchdog in the group stops
/// it too if the test process goes away without dropping it (Ctrl-C, which
/// does not reach another process group, or a kill).
#[derive(Debug)]
struct Watch {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(cargo_lambda: &Path, root: &Path, port: u16, repo: &Path) -> Result<Watch> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG, "lambda-watch"])
            .arg(std::process::id().to_string())
            .arg(cargo_lambda)
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            // Other edits to the workspace must not restart the function mid-test.
            .arg("--ignore-changes")
            .args(["--package", FUNCTION])
            .current_dir(root)
            .env("LIFEBOAT_REPO", repo)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("LIFEBOAT_PASSWORD_SECRET")
            .env_remove("LIFEBOAT_REPLICA_REPO")
            .env_remove("LIFEBOAT_FLEET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        progress(format!(
            "starting {} lambda watch on 127.0.0.1:{port} for {FUNCTION} in {}",
            cargo_lambda.display(),
            root.display()
        ));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start sh to run {}", cargo_lambda.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            echo(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            echo(err, log.clone());
        }
        Ok(Watch { child, port, log })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }

    /// Fail when cargo-lambda has exited or the function did not build.
    fn check_alive(&self) -> Result<()> {
        // Not Child::try_wait, which needs &mut: the child stays a zombie
        // until the guard reaps it.
        if !pid_alive(self.child.id()) {
            bail!(
                "cargo lambda watch exited; its last lines:\n{}",
                self.log_tail()
            );
        }
        let tail = self.log_tail();
        if tail.contains("error: could not compile") {
            bail!("{FUNCTION} did not build; the last lines:\n{tail}");
        }
        Ok(())
    }

    fn wait_serving(&self) -> Result<()> {
        let deadline = Instant::now() + SERVE_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)).is_ok() {
                progress(format!(
                    "cargo lambda watch accepts connections on {}",
                    self.addr()
                ));
                return Ok(());
            }
            self.check_alive()?;
            ensure!(
                Instant::now() < deadline,
                "cargo lambda watch did not accept connections on {} within {:?}; its last lines:\n{}",
                self.addr(),
                SERVE_TIMEOUT,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every TCP socket that cargo-lambda and its processes listen on is
    /// bound to a loopback address, and one of them is the invoke port.
    fn check_loopback_only(&self) -> Result<()> {
        let inodes: BTreeSet<u64> = descendants(self.child.id())
            .into_iter()
            .flat_map(socket_inodes)
            .collect();
        let mut ours = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(state), Some(inode)) =
                    (cols.get(1), cols.get(3), cols.get(9))
                else {
                    continue;
                };
                if *state == "0A" && inode.parse().is_ok_and(|i: u64| inodes.contains(&i)) {
                    ours.push((*local).to_string());
                }
            }
        }
        let port = format!(":{:04X}", self.port);
        ensure!(
            ours.iter().any(|a| a.ends_with(&port)),
            "cargo lambda watch does not listen on 127.0.0.1:{} (its listening sockets: {ours:?})",
            self.port
        );
        let loopback = |a: &str| {
            let host = a.split(':').next().unwrap_or_default();
            host == "0100007F"
                || host == "0000000000000000FFFF00000100007F"
                || host == "00000000000000000000000001000000"
        };
        let open: Vec<&String> = ours.iter().filter(|a| !loopback(a)).collect();
        ensure!(
            open.is_empty(),
            "cargo lambda watch listens beyond loopback: {open:?} (from /proc/net/tcp*)"
        );
        progress(format!(
            "cargo lambda watch listens on loopback only ({} socket(s))",
            ours.len()
        ));
        Ok(())
    }

    /// Invoke the function the way `aws lambda invoke` does, against the emulator.
    fn invoke(&self, event: &Value, timeout: Duration) -> Result<Answer> {
        let body = serde_json::to_vec(event)?;
        let addr = self.addr();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(post(addr, &body, timeout));
        });
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(answer) => return answer,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.check_alive()?;
                    progress(format!(
                        "still waiting for {FUNCTION} to answer ({} s)",
                        started.elapsed().as_secs()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the invoking thread ended without an answer")
                }
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let leader = self.child.id();
        // The function runs in a process group of its own, started by
        // cargo-lambda: note every process and group before the leader exits.
        let processes = descendants(leader);
        let mut groups: BTreeSet<u32> = processes
            .iter()
            .copied()
            .filter_map(process_group)
            .collect();
        groups.insert(leader);
        // cargo-lambda stops the function on SIGTERM; give it the time to.
        signal_group(leader, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            let _ = self.child.try_wait();
            if !processes.iter().any(|&pid| pid_alive(pid)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for group in groups {
            signal_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        progress("cargo lambda watch stopped");
    }
}

fn signal_group(group: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(group)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // ESRCH: the group is already gone.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Copy a pipe to stderr line by line, keeping the last lines for errors.
fn echo(pipe: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let shown: String = line.chars().take(400).collect();
            eprintln!("[watch] {shown}");
            if let Ok(mut lines) = log.lock() {
                lines.push(line);
                let excess = lines.len().saturating_sub(LOG_LINES);
                lines.drain(..excess);
            }
        }
    });
}

/// Whether `pid` is a live process (not a zombie).
fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_fields(&s).first().map(|state| state != "Z"))
        .unwrap_or(false)
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp...
fn stat_fields(stat: &str) -> Vec<String> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).get(2)?.parse().ok()
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(ppid) = stat_fields(&stat).get(1).and_then(|p| p.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while let Some(&pid) = out.get(i) {
        out.extend(children.get(&pid).into_iter().flatten());
        i += 1;
    }
    out
}

/// The inodes of the sockets `pid` has open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// An HTTP answer of the emulator.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the answer (HTTP {}) is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn function_error(&self) -> Option<&String> {
        self.headers.get("x-amz-function-error")
    }

    /// The function's result, when it succeeded.
    fn result(&self) -> Result<Value> {
        let value = self.json()?;
        ensure!(
            self.status == 200
                && self.function_error().is_none()
                && value.get("errorType").is_none(),
            "the invocation failed (HTTP {}, function error {:?}): {value}",
            self.status,
            self.function_error()
        );
        Ok(value)
    }

    /// The function's error: `errorType` and `errorMessage`. The emulator
    /// answers a function error with HTTP 500 (Lambda itself with 200 and
    /// `X-Amz-Function-Error`); either will do.
    fn error(&self) -> Result<(String, String)> {
        let value = self.json()?;
        ensure!(
            self.status >= 400 || self.function_error().is_some(),
            "the invocation succeeded (HTTP {}) where an error was expected: {value}",
            self.status
        );
        let field = |name: &str| {
            value[name].as_str().map(str::to_string).with_context(|| {
                format!("no `{name}` in the answer (HTTP {}): {value}", self.status)
            })
        };
        Ok((field("errorType")?, field("errorMessage")?))
    }
}

/// POST `body` to the function's Invoke URL and read the whole answer.
fn post(addr: SocketAddr, body: &[u8], timeout: Duration) -> Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST /2015-03-31/functions/{FUNCTION}/invocations HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer from {addr} (timeout {timeout:?})"))?;
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("not an HTTP answer: {}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        rest = dechunk(&rest)?;
    } else if let Some(len) = headers.get("content-length").and_then(|l| l.parse().ok()) {
        rest.truncate(len);
    }
    Ok(Answer {
        status,
        headers,
        body: rest,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}
