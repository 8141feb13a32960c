//! Ranged answers as Azure and Cloud Storage send them, and the empty range.

#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use http::HeaderMap;

fn reply(status: u16, body: &'static [u8]) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::from_static(body),
        attempts: 1,
    }
}

fn beyond(r: Result<Bytes, RangeFailure>) -> String {
    match r {
        Err(RangeFailure::Beyond(what)) => what,
        other => panic!("not beyond the end: {other:?}"),
    }
}

#[test]
fn the_header_names_first_and_last_byte_and_an_empty_range_has_none() {
    assert_eq!(
        ByteRange::new(0, 1).header_value().as_deref(),
        Some("bytes=0-0")
    );
    assert_eq!(
        ByteRange::new(4096, 8192).header_value().as_deref(),
        Some("bytes=4096-12287")
    );
    assert_eq!(ByteRange::new(10, 0).header_value(), None);
    assert_eq!(
        ByteRange::new(u64::MAX, 2).header_value().as_deref(),
        Some("bytes=18446744073709551615-18446744073709551615")
    );
}

#[test]
fn an_empty_range_at_or_before_the_end_is_empty_bytes() {
    // At the very end of a 10-byte object: empty, not an error.
    assert!(ByteRange::new(10, 0).empty_within(10).unwrap().is_empty());
    assert!(ByteRange::new(0, 0).empty_within(0).unwrap().is_empty());
    assert!(ByteRange::new(3, 0).empty_within(10).unwrap().is_empty());
    let what = beyond(ByteRange::new(11, 0).empty_within(10));
    assert_eq!(what, "the object has 10 bytes");
}

#[test]
fn a_partial_answer_must_be_the_whole_range() {
    let r = ByteRange::new(2, 3);
    assert_eq!(r.from_reply(reply(206, b"cde")).unwrap(), "cde");
    // Shortened at the object's end (both clouds do this).
    assert_eq!(beyond(r.from_reply(reply(206, b"cd"))), "got 2 bytes");
}

#[test]
fn a_whole_object_answer_is_cut_to_the_range_when_it_holds_it() {
    let r = ByteRange::new(2, 3);
    assert_eq!(r.from_reply(reply(200, b"abcdefg")).unwrap(), "cde");
    assert_eq!(
        ByteRange::new(0, 7)
            .from_reply(reply(200, b"abcdefg"))
            .unwrap(),
        "abcdefg"
    );
    assert_eq!(beyond(r.from_reply(reply(200, b"abcd"))), "got 4 bytes");
}

#[test]
fn a_range_starting_at_or_past_the_end_is_beyond_not_missing() {
    // A non-empty range at the end of the object: 416 from both clouds.
    let what = beyond(ByteRange::new(10, 5).from_reply(reply(416, b"")));
    assert!(what.contains("at or past the end"), "{what}");
    let e = ByteRange::new(10, 5).beyond_error("gs://b/p".into(), "data/k", &what);
    assert!(matches!(e, StoreError::Backend { .. }) && !e.is_retryable());
    let text = e.to_string();
    assert!(
        text.contains("gs://b/p") && text.contains("data/k") && text.contains("range 10+5"),
        "{text}"
    );
}

#[test]
fn other_answers_are_left_to_the_callers_mapping() {
    for status in [404, 403, 503] {
        match ByteRange::new(0, 1).from_reply(reply(status, b"<Error/>")) {
            Err(RangeFailure::Failed(r)) => assert_eq!(r.status.as_u16(), status),
            other => panic!("{status}: {other:?}"),
        }
    }
}
