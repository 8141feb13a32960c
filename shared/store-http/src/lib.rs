//! The HTTP that the stores written by hand on REST APIs share
//! (`lifeboat-store-azure` on the Blob service, `lifeboat-store-gcs` on the
//! Cloud Storage JSON API): both are a few calls over hyper, and without this
//! crate each carried its own copy of the same client, retry loop and status
//! mapping. What stays in each store is what differs between the clouds:
//! signing and tokens, URLs, XML or JSON bodies, uploads.
//!
//! - `client`: one hyper client (rustls with AWS-LC, the provider the rest of
//!   Lifeboat uses, and the system's roots; plain HTTP for emulators) and one
//!   exchange: send a request, collect the whole answer within a time and a
//!   size limit.
//! - `retry`: bounded retries with exponential backoff and full jitter on
//!   408, 429, 5xx and connection failures, honouring `Retry-After`.
//! - `failure`: what an HTTP status means as a [`lifeboat_store::StoreError`],
//!   worded with the store's location and the key.
//! - `range`: ranged reads judged the same way everywhere (an empty range is
//!   empty bytes, a short or unsatisfiable one an error).

mod client;
mod failure;
mod range;
mod retry;

pub use client::{
    http_client, send_once, HttpClient, Reply, SendError, MAX_OBJECT_ANSWER, MAX_TOKEN_ANSWER,
};
pub use failure::FailedCall;
pub use range::{ByteRange, RangeFailure};
pub use retry::{
    retry_after, retryable_status, send_with_retries, Exhausted, RetryPolicy, RetryableError,
};
