//! Lifeboat's AWS edges: the EKS bearer token and the connection to an EKS
//! cluster, Secrets Manager (kubeconfigs, the repository passphrase), Step
//! Functions (starting executions, deduplicated by name), SQS (replies) and
//! SNS (alerts).
//!
//! Every call takes the [`SdkConfig`](aws_config::SdkConfig) the caller loaded
//! (its region, credentials and endpoints, so the same code runs against moto
//! on 127.0.0.1) and fails with an [`AwsError`] that names the resource and
//! region and says whether a retry can help.

pub mod eks;
pub mod eks_token;
mod error;
pub mod secrets;
pub mod sfn;
pub mod sns;
pub mod sqs;

pub use eks::{connect_eks, describe_cluster, EksEndpoint};
pub use eks_token::EksToken;
pub use error::AwsError;
pub use secrets::get_secret_string;
pub use sfn::{execution_name, start_execution, Started};
pub use sns::publish;
pub use sqs::send_message;
