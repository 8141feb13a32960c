//! Set-up the Azure tests need and the product never does: creating
//! containers on Azurite, with the account and key of its connection string.

use crate::fault_proxy::{Answer, Rewrite};
use crate::{azure_env, block_on};
use lifeboat_store_azure::{AzureCredentials, AzureOptions, AzureStore, Secret};
use std::sync::Arc;

/// One field of Azurite's connection string (`AccountName`, `AccountKey`,
/// `BlobEndpoint`...), as `tests/substrate/azure up` wrote it.
pub fn connection_field(name: &str) -> Result<String, String> {
    let cs = azure_env()
        .into_iter()
        .find(|(k, _)| k == "AZURE_STORAGE_CONNECTION_STRING")
        .map(|(_, v)| v)
        .ok_or("azure.env has no AZURE_STORAGE_CONNECTION_STRING")?;
    cs.split(';')
        .filter_map(|part| part.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| format!("Azurite's connection string has no {name}"))
}

/// Create a container in Azurite's development account (an existing one is
/// left as it is).
pub fn create_container(name: &str) -> Result<(), String> {
    let account = connection_field("AccountName")?;
    let opts = AzureOptions {
        endpoint: Some(connection_field("BlobEndpoint")?),
        ..AzureOptions::new(AzureCredentials::SharedKey {
            account_key: Secret::new(&connection_field("AccountKey")?),
        })
    };
    let store = AzureStore::with_options(&account, name, "", opts).map_err(|e| e.to_string())?;
    block_on(store.create_container()).map_err(|e| format!("creating container {name}: {e}"))
}

/// For a [`crate::fault_proxy::FaultProxy`] in front of Azurite: Get
/// Container Properties answers `x-ms-immutable-storage-with-versioning-enabled:
/// true`, what Azure answers for a container with version-level
/// immutability. Azurite has no such setting and ignores the policy headers
/// of Put Blob (docs/stores.md), so behind this proxy a locked repository can
/// be written there, though its blobs are not retained: a source for
/// replication tests, never a test of Azure's immutability.
pub fn immutability_claimed() -> Rewrite {
    Arc::new(|line: &str, answer: &mut Answer| {
        let Some(target) = line.split_whitespace().nth(1) else {
            return false;
        };
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let container_properties = line.starts_with("GET ")
            && query.split('&').any(|p| p == "restype=container")
            && !query.split('&').any(|p| p.starts_with("comp="));
        if container_properties {
            answer
                .head
                .push("x-ms-immutable-storage-with-versioning-enabled: true".into());
        }
        container_properties
    })
}
