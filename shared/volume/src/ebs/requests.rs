//! Counting the requests an EBS client sends, per operation: the figures a
//! copy's cost is made of (EBS direct APIs are priced per request, and each
//! one is a round trip).

use super::Client;
use aws_sdk_ebs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ebs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ebs::error::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Requests sent (retries included), by operation name. Clones share the
/// counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// `client` with every request it sends counted here.
    pub fn count(&self, client: &Client) -> Client {
        let conf = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        Client::from_conf(conf)
    }

    /// The counts so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn add(&self, operation: String) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry(operation).or_default() += 1;
        }
    }
}

/// The EBS direct API operation of a request, from its method and path.
fn operation(method: &str, uri: &str) -> String {
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let name = match (method, parts.as_slice()) {
        ("POST", ["snapshots"]) => "StartSnapshot",
        ("POST", ["snapshots", "completion", _]) => "CompleteSnapshot",
        ("GET", ["snapshots", _, "blocks"]) => "ListSnapshotBlocks",
        ("GET", ["snapshots", _, "changedblocks"]) => "ListChangedBlocks",
        ("GET", ["snapshots", _, "blocks", _]) => "GetSnapshotBlock",
        ("PUT", ["snapshots", _, "blocks", _]) => "PutSnapshotBlock",
        _ => return format!("{method} {path}"),
    };
    name.to_string()
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        self.add(operation(request.method(), request.uri()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_method_and_path() {
        let base = "https://ebs.us-east-1.amazonaws.com";
        let cases = [
            ("POST", "/snapshots", "StartSnapshot"),
            ("POST", "/snapshots/completion/snap-1", "CompleteSnapshot"),
            (
                "GET",
                "/snapshots/snap-1/blocks?maxResults=100",
                "ListSnapshotBlocks",
            ),
            (
                "GET",
                "/snapshots/snap-2/changedblocks?firstSnapshotId=snap-1",
                "ListChangedBlocks",
            ),
            (
                "GET",
                "/snapshots/snap-1/blocks/7?blockToken=x",
                "GetSnapshotBlock",
            ),
            ("PUT", "/snapshots/snap-1/blocks/7", "PutSnapshotBlock"),
            ("DELETE", "/other", "DELETE /other"),
        ];
        for (method, path, want) in cases {
            assert_eq!(operation(method, &format!("{base}{path}")), want, "{path}");
        }
    }
}
