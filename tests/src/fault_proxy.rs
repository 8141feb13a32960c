//! A fault-injecting HTTP proxy for the store tests.
//!
//! No emulator throttles or fails on demand (moto, Azurite and
//! fake-gcs-server all answer every request), so the retry and error paths
//! of the HTTP stores are shown by putting this proxy between a store and
//! its emulator: it forwards requests unchanged, except that the next `n`
//! requests can be answered with a chosen status without reaching the
//! emulator. Each request goes over a connection of its own (`Connection:
//! close` both ways), so faults are counted per request.
//!
//! It also counts what passes: requests per method and the bytes each way
//! as they cross the wire (request line, headers and body; status line,
//! headers and body), which `tests/bench/stores` reads through the
//! `wire-meter` binary.
//!
//! It can also stand for an emulator that goes away and comes back
//! ([`FaultProxy::fail_all`], [`FaultProxy::heal`]), and rewrite answers, to
//! show a store a setting its emulator lacks ([`FaultProxy::start_rewriting`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// An answer of the upstream, as a [`Rewrite`] sees it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status line, then the header lines (without line ends).
    pub head: Vec<String>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A change made to the upstream's answers: given the request line (`GET
/// /path HTTP/1.1`) and the answer, changes it in place and says whether it
/// did. A changed answer is sent with a `Content-Length` of its body.
pub type Rewrite = Arc<dyn Fn(&str, &mut Answer) -> bool + Send + Sync>;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// What every request meets while the upstream is made to look gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Answered with this status.
    Status(u16),
    /// The connection is closed without an answer.
    Hangup,
}

#[derive(Default)]
struct State {
    /// Statuses to answer the next requests with, first to last.
    faults: Mutex<Vec<u16>>,
    /// While set, every request fails this way.
    outage: Mutex<Option<Outage>>,
    /// The request line of every request received, in order.
    lines: Mutex<Vec<String>>,
    rewrite: Option<Rewrite>,
    /// Requests received, failed or forwarded.
    requests: AtomicUsize,
    /// Requests answered with an injected fault.
    injected: AtomicUsize,
    /// Requests received per HTTP method.
    methods: Mutex<BTreeMap<String, u64>>,
    /// Bytes of the requests received from the client, as received.
    bytes_up: AtomicU64,
    /// Bytes of the answers sent back to the client.
    bytes_down: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("requests", &self.requests)
            .field("injected", &self.injected)
            .field("rewrite", &self.rewrite.is_some())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Start a proxy on 127.0.0.1 in front of `upstream` (`http://host:port`,
    /// plain HTTP: the emulators).
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, None).await
    }

    /// Start a proxy whose forwarded answers pass through `rewrite`.
    pub async fn start_rewriting(upstream: &str, rewrite: Rewrite) -> std::io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, Some(rewrite)).await
    }

    async fn start_with(upstream: &str, rewrite: Option<Rewrite>) -> std::io::Result<FaultProxy> {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            rewrite,
            ..State::default()
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, target) = (shared.clone(), target.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &target, &state).await;
                });
            }
        });
        Ok(FaultProxy { url, state, task })
    }

    /// `http://127.0.0.1:PORT`, to configure the store under test with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answer the next `n` requests with `status` (after any faults already
    /// queued), without forwarding them.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut faults = self.state.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.extend(std::iter::repeat_n(status, n));
    }

    /// Fail every request from now on (the upstream looks gone) until
    /// [`FaultProxy::heal`].
    pub fn fail_all(&self, outage: Outage) {
        *self.state.outage.lock().unwrap_or_else(|p| p.into_inner()) = Some(outage);
    }

    /// Forward requests again after [`FaultProxy::fail_all`].
    pub fn heal(&self) {
        *self.state.outage.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The request line of every request received so far, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.state
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Faults queued and not yet used.
    pub fn faults_left(&self) -> usize {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Requests received so far (forwarded or failed).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with an injected fault so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Requests received so far per HTTP method (`GET`, `PUT`, ...).
    pub fn methods(&self) -> BTreeMap<String, u64> {
        self.state
            .methods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bytes received from clients so far: request lines, headers and
    /// bodies, as sent.
    pub fn bytes_up(&self) -> u64 {
        self.state.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes answered to clients so far: status lines, headers and bodies.
    pub fn bytes_down(&self) -> u64 {
        self.state.bytes_down.load(Ordering::SeqCst)
    }

    /// The counts as one JSON object: `requests`, `methods`, `bytes_up`,
    /// `bytes_down`, `injected`.
    pub fn counts(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests(),
            "methods": self.methods(),
            "bytes_up": self.bytes_up(),
            "bytes_down": self.bytes_down(),
            "injected": self.injected(),
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one request, then fail it or forward it and relay the answer.
async fn serve(client: TcpStream, target: &str, state: &State) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let (head, body, received) = read_request(&mut client).await?;
    // Counted before anything is answered, so a client that has its answer
    // finds its request in the counts.
    let method = String::from_utf8_lossy(&head)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    *state
        .methods
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(method)
        .or_default() += 1;
    state.bytes_up.fetch_add(received, Ordering::SeqCst);
    state.requests.fetch_add(1, Ordering::SeqCst);
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    state
        .lines
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.clone());
    let outage = *state.outage.lock().unwrap_or_else(|p| p.into_inner());
    let fault = match outage {
        Some(Outage::Status(status)) => Some(status),
        Some(Outage::Hangup) => {
            state.injected.fetch_add(1, Ordering::SeqCst);
            // Dropping the socket unanswered: the client sees the server go away.
            return Ok(());
        }
        None => {
            let mut faults = state.faults.lock().unwrap_or_else(|p| p.into_inner());
            (!faults.is_empty()).then(|| faults.remove(0))
        }
    };
    let mut client = client.into_inner();
    if let Some(status) = fault {
        state.injected.fetch_add(1, Ordering::SeqCst);
        let text = format!("injected fault {status}");
        let answer = format!(
            "HTTP/1.1 {status} Injected\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        state
            .bytes_down
            .fetch_add(answer.len() as u64, Ordering::SeqCst);
        client.write_all(answer.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut upstream = TcpStream::connect(target).await?;
    upstream.write_all(&head).await?;
    upstream.write_all(&body).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    if let Some(rewrite) = &state.rewrite {
        answer = rewritten(&line, answer, rewrite.as_ref());
    }
    state
        .bytes_down
        .fetch_add(answer.len() as u64, Ordering::SeqCst);
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// `answer` as `rewrite` changes it, or unchanged when it declines (so a
/// `HEAD` answer keeps its `Content-Length`).
fn rewritten(
    line: &str,
    answer: Vec<u8>,
    rewrite: &(dyn Fn(&str, &mut Answer) -> bool + Send + Sync),
) -> Vec<u8> {
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer;
    };
    let head: Vec<String> = String::from_utf8_lossy(&answer[..split])
        .lines()
        .map(str::to_string)
        .collect();
    let chunked = head.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &answer[split + 4..];
    let body = if chunked {
        match dechunk(body) {
            Some(b) => b,
            None => return answer,
        }
    } else {
        body.to_vec()
    };
    let mut changed = Answer { head, body };
    if !rewrite(line, &mut changed) {
        return answer;
    }
    let mut out = String::new();
    for l in &changed.head {
        let lower = l.to_ascii_lowercase();
        if !lower.starts_with("content-length:") && !lower.starts_with("transfer-encoding:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", changed.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&changed.body);
    bytes
}

/// The body of a chunked answer, or `None` when it does not parse.
pub(crate) fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(eol + 2..eol + 2 + size)?);
        data = data.get(eol + 2 + size + 2..)?;
    }
}

/// The request's head, with `Connection: close` in place of any connection
/// header, its body (by `Content-Length`, or chunked, kept as sent), and how
/// many bytes the client sent for both.
async fn read_request(
    client: &mut BufReader<TcpStream>,
) -> std::io::Result<(Vec<u8>, Vec<u8>, u64)> {
    let mut received = 0u64;
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        let n = client.read_line(&mut line).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received += n as u64;
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            client.read_line(&mut size_line).await?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            client.read_exact(&mut chunk).await?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        client.read_exact(&mut body).await?;
    }
    received += body.len() as u64;
    Ok((head, body, received))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An upstream that answers every request with its own request line.
    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((c, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut c = BufReader::new(c);
                    let (head, body, _) = read_request(&mut c).await.unwrap();
                    let first = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let text = format!("{first} {}", body.len());
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let mut c = c.into_inner();
                    c.write_all(answer.as_bytes()).await.unwrap();
                    c.shutdown().await.unwrap();
                });
            }
        });
        url
    }

    async fn send(url: &str, request: &str) -> String {
        let mut c = TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn faults_are_injected_in_order_then_requests_pass_through() {
        let proxy = FaultProxy::start(&echo_server().await).await.unwrap();
        proxy.fail_next(1, 503);
        proxy.fail_next(1, 429);
        let put = "PUT /b/k HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nhello";
        let first = send(proxy.url(), put).await;
        assert!(first.starts_with("HTTP/1.1 503"), "{first}");
        let second = send(proxy.url(), put).await;
        assert!(second.starts_with("HTTP/1.1 429"), "{second}");
        let through = send(proxy.url(), put).await;
        assert!(through.starts_with("HTTP/1.1 200"), "{through}");
        assert!(through.ends_with("PUT /b/k HTTP/1.1 5"), "{through}");
        let chunked = "POST /u HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let posted = send(proxy.url(), chunked).await;
        assert!(posted.ends_with("POST /u HTTP/1.1 13"), "{posted}");
        assert_eq!((proxy.requests(), proxy.injected()), (4, 2));
        let methods: Vec<_> = proxy.methods().into_iter().collect();
        assert_eq!(methods, [("POST".to_string(), 1), ("PUT".to_string(), 3)]);
        assert_eq!(
            proxy.bytes_up(),
            (3 * put.len() + chunked.len()) as u64,
            "every request byte as the client sent it"
        );
        let answers = [first, second, through, posted];
        assert_eq!(
            proxy.bytes_down(),
            answers.iter().map(String::len).sum::<usize>() as u64,
            "every answer byte as the client received it"
        );
        assert_eq!(proxy.counts()["requests"], 4);
        assert_eq!(proxy.faults_left(), 0);
    }

    #[tokio::test]
    async fn an_outage_fails_every_request_until_healed() {
        let proxy = FaultProxy::start(&echo_server().await).await.unwrap();
        let get = "GET /b HTTP/1.1\r\nhost: x\r\n\r\n";
        proxy.fail_all(Outage::Status(503));
        for _ in 0..3 {
            assert!(send(proxy.url(), get).await.starts_with("HTTP/1.1 503"));
        }
        proxy.fail_all(Outage::Hangup);
        assert_eq!(send(proxy.url(), get).await, "");
        proxy.heal();
        assert!(send(proxy.url(), get).await.starts_with("HTTP/1.1 200"));
        assert_eq!((proxy.requests(), proxy.injected()), (5, 4));
        assert_eq!(proxy.request_lines()[4], "GET /b HTTP/1.1");
    }

    #[tokio::test]
    async fn answers_are_rewritten_with_a_new_length() {
        let rewrite: Rewrite = Arc::new(|line: &str, answer: &mut Answer| {
            if !line.starts_with("GET /patch ") {
                return false;
            }
            answer.head.push("x-patched: yes".into());
            answer.body.extend_from_slice(b" and more");
            true
        });
        let proxy = FaultProxy::start_rewriting(&echo_server().await, rewrite)
            .await
            .unwrap();
        let patched = send(proxy.url(), "GET /patch HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(
            patched.ends_with(
                "x-patched: yes\r\ncontent-length: 30\r\n\r\nGET /patch HTTP/1.1 0 and more"
            ),
            "{patched}"
        );
        let plain = send(proxy.url(), "GET /plain HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(plain.ends_with("\r\n\r\nGET /plain HTTP/1.1 0"), "{plain}");
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(b"abcde".as_slice())
        );
    }
}
