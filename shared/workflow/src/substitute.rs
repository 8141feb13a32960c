//! `${Key}` placeholders, filled as CloudFormation's
//! `DefinitionSubstitutions` fills them.

use std::collections::BTreeMap;

use crate::error::AslError;

/// Replaces every `${Key}` in `definition` with `subs[Key]`.
///
/// The text is not parsed: placeholders are replaced wherever they are, as
/// CloudFormation does. A key with no value, or a `${` without its `}`, is an
/// error naming it.
pub fn substitute(definition: &str, subs: &BTreeMap<String, String>) -> Result<String, AslError> {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(AslError::UnterminatedPlaceholder {
            offset: offset + start,
        })?;
        let key = &after[..end];
        let value = subs.get(key).ok_or_else(|| AslError::UnknownSubstitution {
            key: key.to_string(),
        })?;
        out.push_str(value);
        let consumed = start + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}
