//! The little XML the Blob service sends back: List Blobs pages and error
//! bodies. Their shape is fixed and flat, so a few lines of scanning read
//! them; no XML crate is needed (see docs/stores.md).

use chrono::{DateTime, Utc};

/// One blob of a List Blobs page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedBlob {
    /// The full blob name (the store's prefix included).
    pub name: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
    /// Present when the listing asked for versions and the container keeps them.
    pub version_id: Option<String>,
}

/// One List Blobs page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListPage {
    pub blobs: Vec<ListedBlob>,
    /// Where the next page starts; `None` on the last one.
    pub next_marker: Option<String>,
}

/// Read a List Blobs answer; `Err` says what is missing.
pub(crate) fn parse_list(xml: &str) -> Result<ListPage, String> {
    if !xml.contains("<EnumerationResults") {
        return Err("not a List Blobs answer (no EnumerationResults)".into());
    }
    let mut blobs = Vec::new();
    let mut rest = xml;
    while let Some((blob, after)) = element(rest, "Blob") {
        rest = after;
        let name = match element(blob.inner, "Name") {
            Some((n, _)) if n.attrs.contains("Encoded=\"true\"") => percent_decode(n.inner),
            Some((n, _)) => unescape(n.inner),
            None => return Err("a listed blob has no Name".into()),
        };
        let props = element(blob.inner, "Properties").map(|(p, _)| p.inner);
        let text_of = |tag: &str| {
            props
                .and_then(|p| element(p, tag))
                .map(|(e, _)| unescape(e.inner))
        };
        let size = text_of("Content-Length")
            .ok_or_else(|| format!("listed blob {name} has no Content-Length"))?
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("listed blob {name} has a bad Content-Length: {e}"))?;
        let last_modified = text_of("Last-Modified").and_then(|t| parse_http_date(&t));
        let version_id = element(blob.inner, "VersionId").map(|(v, _)| unescape(v.inner));
        blobs.push(ListedBlob {
            name,
            size,
            last_modified,
            version_id,
        });
    }
    let next_marker = element(xml, "NextMarker")
        .map(|(m, _)| unescape(m.inner))
        .filter(|m| !m.is_empty());
    Ok(ListPage { blobs, next_marker })
}

/// `Code` and the first line of `Message` of an error body.
pub(crate) fn parse_error(xml: &str) -> (Option<String>, Option<String>) {
    let text = |tag| {
        element(xml, tag)
            .map(|(e, _)| unescape(e.inner))
            .filter(|t| !t.is_empty())
    };
    // Azure appends "RequestId:..." and "Time:..." lines to the message.
    let message = text("Message").map(|m| m.lines().next().unwrap_or("").trim().to_string());
    (text("Code"), message)
}

/// `Wed, 09 Sep 2009 09:20:03 GMT`.
pub(crate) fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

struct Element<'a> {
    attrs: &'a str,
    inner: &'a str,
}

/// The first `<tag ...>inner</tag>` (or `<tag/>`) in `xml`, and the text after it.
fn element<'a>(xml: &'a str, tag: &str) -> Option<(Element<'a>, &'a str)> {
    let open = format!("<{tag}");
    let mut from = 0;
    loop {
        let start = from + xml[from..].find(&open)?;
        let after_name = start + open.len();
        let next = xml[after_name..].chars().next()?;
        if !(next == '>' || next == '/' || next.is_whitespace()) {
            // A longer tag name (`<BlobPrefix>` when looking for `<Blob>`).
            from = after_name;
            continue;
        }
        let close_of_open = after_name + xml[after_name..].find('>')?;
        let attrs = &xml[after_name..close_of_open];
        if let Some(attrs) = attrs.strip_suffix('/') {
            return Some((Element { attrs, inner: "" }, &xml[close_of_open + 1..]));
        }
        let close = format!("</{tag}>");
        let inner_start = close_of_open + 1;
        let end = inner_start + xml[inner_start..].find(&close)?;
        return Some((
            Element {
                attrs,
                inner: &xml[inner_start..end],
            },
            &xml[end + close.len()..],
        ));
    }
}

/// The five predefined entities and numeric character references.
fn unescape(text: &str) -> String {
    match text
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        Some(raw) => raw.to_string(),
        None => unescape_entities(text),
    }
}

fn unescape_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A page as the service sends it (versions listed, one name escaped,
    /// one percent-encoded, a blob prefix to skip).
    const PAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://acct.blob.core.windows.net/" ContainerName="c">
  <Prefix>p/</Prefix><Marker /><MaxResults>5000</MaxResults>
  <Blobs>
    <Blob><Name>p/data/a&amp;b</Name><VersionId>2026-12-01T10:00:00.1234567Z</VersionId><IsCurrentVersion>true</IsCurrentVersion>
      <Properties><Creation-Time>Tue, 01 Dec 2026 10:00:00 GMT</Creation-Time><Last-Modified>Tue, 01 Dec 2026 10:00:01 GMT</Last-Modified>
      <Etag>0x8D</Etag><Content-Length>11</Content-Length><Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType></Properties>
      <OrMetadata /></Blob>
    <BlobPrefix><Name>p/dir/</Name></BlobPrefix>
    <Blob><Name Encoded="true">p/odd%EF%BF%BE</Name><Properties><Last-Modified>Tue, 01 Dec 2026 10:00:02 GMT</Last-Modified><Content-Length>0</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>2!72!MDAwMDA2IXAvZGF0YS9i</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn a_page_gives_names_sizes_dates_versions_and_marker() {
        let page = parse_list(PAGE).unwrap();
        assert_eq!(page.blobs.len(), 2);
        let a = &page.blobs[0];
        assert_eq!(a.name, "p/data/a&b");
        assert_eq!(a.size, 11);
        assert_eq!(
            a.last_modified.unwrap().to_rfc3339(),
            "2026-12-01T10:00:01+00:00"
        );
        assert_eq!(
            a.version_id.as_deref(),
            Some("2026-12-01T10:00:00.1234567Z")
        );
        assert_eq!(page.blobs[1].name, "p/odd\u{fffe}");
        assert_eq!(page.blobs[1].version_id, None);
        assert_eq!(
            page.next_marker.as_deref(),
            Some("2!72!MDAwMDA2IXAvZGF0YS9i")
        );
    }

    #[test]
    fn the_last_page_has_an_empty_marker() {
        let xml = r#"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#;
        assert_eq!(
            parse_list(xml).unwrap(),
            ListPage {
                blobs: vec![],
                next_marker: None
            }
        );
        let xml =
            "<EnumerationResults><Blobs></Blobs><NextMarker></NextMarker></EnumerationResults>";
        assert_eq!(parse_list(xml).unwrap().next_marker, None);
        assert!(parse_list("<Error/>").is_err());
        let bad = "<EnumerationResults><Blobs><Blob><Name>x</Name><Properties></Properties></Blob></Blobs></EnumerationResults>";
        assert!(parse_list(bad).unwrap_err().contains("Content-Length"));
    }

    #[test]
    fn errors_give_code_and_the_first_line_of_the_message() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobAlreadyExists</Code><Message>The specified blob already exists.\nRequestId:abc\nTime:2026-12-01T10:00:00Z</Message></Error>";
        assert_eq!(
            parse_error(xml),
            (
                Some("BlobAlreadyExists".into()),
                Some("The specified blob already exists.".into())
            )
        );
        assert_eq!(parse_error(""), (None, None));
    }

    #[test]
    fn entities_and_references_are_decoded() {
        assert_eq!(
            unescape("a&lt;b&gt;&quot;&apos;&#65;&#x42;&bogus;&"),
            "a<b>\"'AB&bogus;&"
        );
    }
}
