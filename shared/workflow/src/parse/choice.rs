//! Parsing Choice Rules, with errors naming the rule's field
//! (`Choices[0].And[1].NumericEquals`).

use serde_json::Value;

use crate::choice::{
    parse_timestamp, pattern, ChoiceRule, DataTest, Kind, Operand, Operator, OPERATORS,
};
use crate::error::AslError;
use crate::path::Path;

/// Parses a Choice Rule at `field` (`Choices[0]`, `Choices[0].And[1]`, ...);
/// `top` rules carry `Next` (read by the caller), nested ones must not.
pub(crate) fn parse_rule(
    value: &Value,
    location: &str,
    field: &str,
    top: bool,
) -> Result<ChoiceRule, AslError> {
    let Some(map) = value.as_object() else {
        return Err(AslError::invalid(
            location,
            field,
            "a Choice Rule must be an object",
        ));
    };
    if !top && map.contains_key("Next") {
        return Err(AslError::invalid(
            location,
            &format!("{field}.Next"),
            "a nested Choice Rule must not have \"Next\"",
        ));
    }
    for key in map.keys() {
        let known = matches!(
            key.as_str(),
            "Next" | "Comment" | "Variable" | "And" | "Or" | "Not"
        ) || operator_named(key).is_some();
        if key == "Assign" || key == "Output" || key == "Condition" {
            return Err(AslError::Unsupported {
                location: location.to_string(),
                field: format!("{field}.{key}"),
            });
        }
        if !known {
            return Err(AslError::UnknownField {
                location: location.to_string(),
                field: format!("{field}.{key}"),
            });
        }
    }
    let list = |name: &str| -> Result<Vec<ChoiceRule>, AslError> {
        let here = format!("{field}.{name}");
        match map.get(name).and_then(Value::as_array) {
            Some(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_rule(item, location, &format!("{here}[{i}]"), false))
                .collect(),
            _ => Err(AslError::invalid(
                location,
                &here,
                "must be a non-empty array of Choice Rules",
            )),
        }
    };
    let boolean = ["And", "Or", "Not"]
        .iter()
        .filter(|k| map.contains_key(**k))
        .count();
    let operators: Vec<&String> = map.keys().filter(|k| operator_named(k).is_some()).collect();
    if boolean > 0 {
        if boolean > 1 || !operators.is_empty() || map.contains_key("Variable") {
            return Err(AslError::invalid(
                location,
                field,
                "a Choice Rule has exactly one of \"And\", \"Or\", \"Not\" or a data test",
            ));
        }
        if map.contains_key("And") {
            return Ok(ChoiceRule::And(list("And")?));
        }
        if map.contains_key("Or") {
            return Ok(ChoiceRule::Or(list("Or")?));
        }
        let inner = map.get("Not").unwrap_or(&Value::Null);
        let rule = parse_rule(inner, location, &format!("{field}.Not"), false)?;
        return Ok(ChoiceRule::Not(Box::new(rule)));
    }
    let variable = match map.get("Variable") {
        Some(Value::String(text)) => Path::parse(text)
            .map_err(|e| AslError::invalid(location, &format!("{field}.Variable"), e))?,
        Some(_) => {
            return Err(AslError::invalid(
                location,
                &format!("{field}.Variable"),
                "must be a Path",
            ))
        }
        None => return Err(AslError::missing(location, &format!("{field}.Variable"))),
    };
    let [name] = operators.as_slice() else {
        return Err(AslError::invalid(
            location,
            field,
            "a data test has exactly one comparison operator",
        ));
    };
    let here = format!("{field}.{name}");
    let (operator, kind, is_path) =
        operator_named(name).unwrap_or((Operator::IsPresent, Kind::Type, false));
    let value = map.get(name.as_str()).unwrap_or(&Value::Null);
    let operand = if is_path {
        let text = value
            .as_str()
            .ok_or_else(|| AslError::invalid(location, &here, "must be a Path"))?;
        Operand::Path(Path::parse(text).map_err(|e| AslError::invalid(location, &here, e))?)
    } else {
        let ok = match kind {
            Kind::String => value.is_string(),
            Kind::Numeric => value.is_number(),
            Kind::Boolean | Kind::Type => value.is_boolean(),
            Kind::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
            Kind::Pattern => value.as_str().is_some_and(|p| pattern(p).is_ok()),
        };
        if !ok {
            let expected = match kind {
                Kind::String => "a string",
                Kind::Numeric => "a number",
                Kind::Boolean | Kind::Type => "a boolean",
                Kind::Timestamp => "an RFC 3339 timestamp such as \"2016-03-14T01:59:00Z\"",
                Kind::Pattern => "a string whose only escapes are \\* and \\\\",
            };
            return Err(AslError::invalid(
                location,
                &here,
                format!("must be {expected}"),
            ));
        }
        Operand::Value(value.clone())
    };
    Ok(ChoiceRule::Test(DataTest {
        variable,
        operator,
        operand,
    }))
}

/// The operator a field names, its kind, and whether it is a `...Path` form.
pub(crate) fn operator_named(name: &str) -> Option<(Operator, Kind, bool)> {
    if let Some((_, op, kind)) = OPERATORS.iter().find(|(n, _, _)| *n == name) {
        return Some((*op, *kind, false));
    }
    let base = name.strip_suffix("Path")?;
    OPERATORS
        .iter()
        .find(|(n, _, k)| *n == base && !matches!(k, Kind::Type | Kind::Pattern))
        .map(|(_, op, kind)| (*op, *kind, true))
}
