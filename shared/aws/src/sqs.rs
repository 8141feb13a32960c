//! Sending messages to SQS (the replies to `reply_to` queues).

use crate::error::{from_sdk, region_name, AwsError};
use aws_config::SdkConfig;

/// Send `body` to the queue at `queue_url` and return SQS's message id.
///
/// A queue of AWS's (`https://sqs.<region>.amazonaws.com/<account>/<name>`)
/// is reached in its own region, which may differ from the region of `sdk`;
/// any other URL (a local endpoint) goes to the endpoint of `sdk`.
pub async fn send_message(
    sdk: &SdkConfig,
    queue_url: &str,
    body: &str,
) -> Result<String, AwsError> {
    if queue_url.is_empty() {
        return Err(AwsError::InvalidInput("empty SQS queue URL".to_string()));
    }
    let mut config = aws_sdk_sqs::config::Builder::from(sdk);
    let region = match queue_region(queue_url) {
        Some(r) if sdk.endpoint_url().is_none() => {
            config.set_region(Some(aws_sdk_sqs::config::Region::new(r.to_string())));
            r.to_string()
        }
        _ => region_name(sdk),
    };
    let what = format!("SQS queue {queue_url} in {region}");
    let out = aws_sdk_sqs::Client::from_conf(config.build())
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e))?;
    let id = out
        .message_id()
        .ok_or_else(|| AwsError::other(&what, "SendMessage answered without a message id"))?
        .to_string();
    tracing::debug!(queue = queue_url, message_id = %id, bytes = body.len(), "sent message");
    Ok(id)
}

/// The region in an AWS queue URL: `sqs.<region>.amazonaws.com[.cn]` or the
/// legacy `<region>.queue.amazonaws.com`.
fn queue_region(queue_url: &str) -> Option<&str> {
    let rest = queue_url.strip_prefix("https://")?;
    let host = rest.split('/').next()?;
    let region = if let Some(after) = host.strip_prefix("sqs.") {
        after.split('.').next()?
    } else {
        host.strip_suffix(".queue.amazonaws.com")?
    };
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (valid && region.contains('-')).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_of_aws_name_their_region() {
        let r = |u| queue_region(u);
        assert_eq!(
            r("https://sqs.eu-west-1.amazonaws.com/123456789012/ci-results"),
            Some("eu-west-1")
        );
        assert_eq!(
            r("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q"),
            Some("cn-north-1")
        );
        assert_eq!(
            r("https://us-west-2.queue.amazonaws.com/123456789012/q"),
            Some("us-west-2")
        );
        assert_eq!(r("http://127.0.0.1:4566/123456789012/q"), None);
        assert_eq!(r("https://sqs.amazonaws.com/1/q"), None);
    }
}
