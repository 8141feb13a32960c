//! The S3 implementation of [`lifeboat_store::ObjectStore`]: AWS S3 or any
//! S3-compatible store (moto, MinIO), configured the standard AWS way, with
//! Object Lock retention on every write when the repository asks for it.
//!
//! It lives apart from the store trait so that the repository format and the
//! operations build and fuzz without the AWS SDK. `lifeboat-stores` opens it
//! for `s3://` URLs.

mod s3;

pub use s3::S3Store;
