//! Publishing alerts to SNS (`LIFEBOAT_ALERT_TOPIC`): a failed workflow,
//! a snapshot that failed verification, data that looks attacked.

use crate::error::{from_sdk, region_name, AwsError};
use aws_config::SdkConfig;

/// SNS's limit on a subject, in characters.
const SUBJECT_MAX: usize = 100;

/// Publish `message` with `subject` to the topic `topic_arn` and return
/// SNS's message id.
///
/// A topic ARN names its region (`arn:aws:sns:<region>:<account>:<name>`):
/// the message is published there, which may differ from the region of
/// `sdk`, unless `sdk` has an endpoint of its own (moto). The subject is
/// made to fit SNS's rules: one line, printable ASCII, at most 100
/// characters.
pub async fn publish(
    sdk: &SdkConfig,
    topic_arn: &str,
    subject: &str,
    message: &str,
) -> Result<String, AwsError> {
    let region = topic_region(topic_arn).ok_or_else(|| {
        AwsError::InvalidInput(format!(
            "SNS topic {topic_arn:?} is not a topic ARN (arn:<partition>:sns:<region>:<account>:<name>)"
        ))
    })?;
    let mut config = aws_sdk_sns::config::Builder::from(sdk);
    let region = if sdk.endpoint_url().is_none() {
        config.set_region(Some(aws_sdk_sns::config::Region::new(region.to_string())));
        region.to_string()
    } else {
        region_name(sdk)
    };
    let what = format!("SNS topic {topic_arn} in {region}");
    let out = aws_sdk_sns::Client::from_conf(config.build())
        .publish()
        .topic_arn(topic_arn)
        .subject(subject_line(subject))
        .message(message)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e))?;
    let id = out
        .message_id()
        .ok_or_else(|| AwsError::other(&what, "Publish answered without a message id"))?
        .to_string();
    tracing::debug!(topic = topic_arn, message_id = %id, "published alert");
    Ok(id)
}

/// The region of a topic ARN.
fn topic_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let ok = !partition.is_empty()
        && region.contains('-')
        && !account.is_empty()
        && !name.is_empty()
        && parts.next().is_none();
    ok.then_some(region)
}

/// A subject SNS accepts: printable ASCII on one line (anything else
/// becomes `?`, line breaks become spaces), at most 100 characters, never
/// empty.
fn subject_line(subject: &str) -> String {
    let mut s: String = subject
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .take(SUBJECT_MAX)
        .collect();
    if s.trim().is_empty() {
        s = "Lifeboat alert".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_name_their_region() {
        assert_eq!(
            topic_region("arn:aws:sns:eu-west-1:123456789012:lifeboat-alerts"),
            Some("eu-west-1")
        );
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:123456789012:a"),
            Some("cn-north-1")
        );
        assert_eq!(topic_region("arn:aws:sqs:eu-west-1:1:q"), None);
        assert_eq!(topic_region("arn:aws:sns:eu-west-1:1:a:extra"), None);
        assert_eq!(topic_region("lifeboat-alerts"), None);
        assert_eq!(topic_region("arn:aws:sns::1:a"), None);
    }

    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(
            subject_line("backup of prod failed"),
            "backup of prod failed"
        );
        assert_eq!(subject_line("a\nb\u{e9}"), "a b?");
        assert_eq!(subject_line(&"x".repeat(300)).len(), SUBJECT_MAX);
        assert_eq!(subject_line(" \n"), "Lifeboat alert");
    }
}
