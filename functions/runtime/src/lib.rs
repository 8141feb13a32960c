//! Shared by every Lifeboat Lambda function (placeholder while it is written).
