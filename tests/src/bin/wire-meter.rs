//! `wire-meter UPSTREAM`: counts the HTTP requests and bytes between a
//! client and an emulator (`http://127.0.0.1:PORT`), for
//! `tests/bench/stores`.
//!
//! It puts a [`FaultProxy`] (injecting nothing) in front of UPSTREAM and
//! prints one line on stdout: the proxy's URL, to point the client at, and
//! the port of a counts socket. Each connection to that socket is answered
//! with the counts so far as one JSON line (`requests`, `methods`,
//! `bytes_up`, `bytes_down`) and closed: from bash,
//! `exec 3<>/dev/tcp/127.0.0.1/PORT && cat <&3`. On SIGTERM or SIGINT it
//! prints the counts on stdout and exits.
//!
//! The proxy closes every connection after one request, so clients cannot
//! keep connections alive through it: requests and bytes are as without it,
//! TCP connections are one per request.

use lifeboat_tests::fault_proxy::FaultProxy;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(upstream) = std::env::args().nth(1) else {
        return Err("usage: wire-meter http://HOST:PORT (the server to count requests to)".into());
    };
    let proxy = Arc::new(FaultProxy::start(&upstream).await?);
    let counts = TcpListener::bind("127.0.0.1:0").await?;
    println!("{} {}", proxy.url(), counts.local_addr()?.port());

    let shared = proxy.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = counts.accept().await {
            let line = format!("{}\n", shared.counts());
            let _ = conn.write_all(line.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("{}", proxy.counts());
    Ok(())
}
