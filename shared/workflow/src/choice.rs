//! Choice Rules: Boolean expressions (`And`, `Or`, `Not`) and data-test
//! expressions (`Variable` with one comparison operator), parsed and evaluated
//! as the specification describes.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::error::StateError;
use crate::path::Path;

/// A Choice Rule.
#[derive(Debug, Clone, PartialEq)]
pub enum ChoiceRule {
    /// True when every rule is (evaluation stops at the first false one).
    And(Vec<ChoiceRule>),
    /// True when any rule is (evaluation stops at the first true one).
    Or(Vec<ChoiceRule>),
    /// The inverse of the rule.
    Not(Box<ChoiceRule>),
    /// A comparison of the value at `variable`.
    Test(DataTest),
}

/// A data-test expression: `"Variable": path` and one comparison operator.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    /// The Path of the value tested.
    pub variable: Path,
    /// The comparison operator (the `...Path` variants share the operator of
    /// the plain form; see `operand`).
    pub operator: Operator,
    /// What the value is compared with.
    pub operand: Operand,
}

/// The value a data test compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A literal: a string, number, boolean or timestamp string; for the `Is*`
    /// operators, the expected truth (`"IsNull": false` means "is not null").
    Value(Value),
    /// A Path on the effective input (the operators ending in `Path`).
    Path(Path),
}

/// Comparison operators. Each of `String*` (but `StringMatches`), `Numeric*`,
/// `BooleanEquals` and `Timestamp*` has a `...Path` form too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Operator {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
    Pattern,
    Type,
}

pub(crate) const OPERATORS: &[(&str, Operator, Kind)] = &[
    ("StringEquals", Operator::StringEquals, Kind::String),
    ("StringLessThan", Operator::StringLessThan, Kind::String),
    (
        "StringGreaterThan",
        Operator::StringGreaterThan,
        Kind::String,
    ),
    (
        "StringLessThanEquals",
        Operator::StringLessThanEquals,
        Kind::String,
    ),
    (
        "StringGreaterThanEquals",
        Operator::StringGreaterThanEquals,
        Kind::String,
    ),
    ("StringMatches", Operator::StringMatches, Kind::Pattern),
    ("NumericEquals", Operator::NumericEquals, Kind::Numeric),
    ("NumericLessThan", Operator::NumericLessThan, Kind::Numeric),
    (
        "NumericGreaterThan",
        Operator::NumericGreaterThan,
        Kind::Numeric,
    ),
    (
        "NumericLessThanEquals",
        Operator::NumericLessThanEquals,
        Kind::Numeric,
    ),
    (
        "NumericGreaterThanEquals",
        Operator::NumericGreaterThanEquals,
        Kind::Numeric,
    ),
    ("BooleanEquals", Operator::BooleanEquals, Kind::Boolean),
    (
        "TimestampEquals",
        Operator::TimestampEquals,
        Kind::Timestamp,
    ),
    (
        "TimestampLessThan",
        Operator::TimestampLessThan,
        Kind::Timestamp,
    ),
    (
        "TimestampGreaterThan",
        Operator::TimestampGreaterThan,
        Kind::Timestamp,
    ),
    (
        "TimestampLessThanEquals",
        Operator::TimestampLessThanEquals,
        Kind::Timestamp,
    ),
    (
        "TimestampGreaterThanEquals",
        Operator::TimestampGreaterThanEquals,
        Kind::Timestamp,
    ),
    ("IsNull", Operator::IsNull, Kind::Type),
    ("IsPresent", Operator::IsPresent, Kind::Type),
    ("IsNumeric", Operator::IsNumeric, Kind::Type),
    ("IsString", Operator::IsString, Kind::Type),
    ("IsBoolean", Operator::IsBoolean, Kind::Type),
    ("IsTimestamp", Operator::IsTimestamp, Kind::Type),
];

fn kind(operator: Operator) -> Kind {
    OPERATORS
        .iter()
        .find(|(_, op, _)| *op == operator)
        .map_or(Kind::Type, |(_, _, kind)| *kind)
}

impl ChoiceRule {
    /// Evaluates the rule against the effective input.
    ///
    /// A Variable (or `...Path` operand) that selects nothing is a
    /// `States.Runtime` error, except for `IsPresent`.
    pub(crate) fn evaluate(&self, input: &Value, context: &Value) -> Result<bool, StateError> {
        match self {
            ChoiceRule::And(rules) => {
                for rule in rules {
                    if !rule.evaluate(input, context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            ChoiceRule::Or(rules) => {
                for rule in rules {
                    if rule.evaluate(input, context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            ChoiceRule::Not(rule) => Ok(!rule.evaluate(input, context)?),
            ChoiceRule::Test(test) => test.evaluate(input, context),
        }
    }
}

impl DataTest {
    fn evaluate(&self, input: &Value, context: &Value) -> Result<bool, StateError> {
        let found = self.variable.select(input, context).ok();
        if self.operator == Operator::IsPresent {
            let present = match &found {
                Some(Value::Array(items)) if !self.variable.is_reference() => !items.is_empty(),
                other => other.is_some(),
            };
            return Ok(present == self.expected_flag());
        }
        let value = found.ok_or_else(|| {
            StateError::runtime(format!(
                "Invalid path \"{}\": the choice state's condition path references an invalid value",
                self.variable
            ))
        })?;
        let operand = match &self.operand {
            Operand::Value(v) => v.clone(),
            Operand::Path(path) => path.select(input, context).map_err(|e| {
                StateError::runtime(format!("Invalid path \"{path}\" in a Choice Rule: {e}"))
            })?,
        };
        Ok(compare(self.operator, &value, &operand))
    }

    fn expected_flag(&self) -> bool {
        matches!(self.operand, Operand::Value(Value::Bool(true)))
    }
}

/// Compares `value` (selected by Variable) with `operand`; values of the
/// wrong type compare false.
pub(crate) fn compare(operator: Operator, value: &Value, operand: &Value) -> bool {
    use Operator::*;
    let ordering =
        |wanted: &[Ordering], got: Option<Ordering>| got.is_some_and(|o| wanted.contains(&o));
    let which: &[Ordering] = match operator {
        StringEquals | NumericEquals | TimestampEquals => &[Ordering::Equal],
        StringLessThan | NumericLessThan | TimestampLessThan => &[Ordering::Less],
        StringGreaterThan | NumericGreaterThan | TimestampGreaterThan => &[Ordering::Greater],
        StringLessThanEquals | NumericLessThanEquals | TimestampLessThanEquals => {
            &[Ordering::Less, Ordering::Equal]
        }
        StringGreaterThanEquals | NumericGreaterThanEquals | TimestampGreaterThanEquals => {
            &[Ordering::Greater, Ordering::Equal]
        }
        _ => &[],
    };
    match kind(operator) {
        Kind::String => ordering(
            which,
            match (value.as_str(), operand.as_str()) {
                (Some(a), Some(b)) => Some(a.cmp(b)),
                _ => None,
            },
        ),
        Kind::Numeric => ordering(
            which,
            match (
                value.as_number().and_then(|n| n.as_f64()),
                operand.as_number().and_then(|n| n.as_f64()),
            ) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => None,
            },
        ),
        Kind::Timestamp => ordering(
            which,
            match (
                value.as_str().and_then(parse_timestamp),
                operand.as_str().and_then(parse_timestamp),
            ) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            },
        ),
        Kind::Boolean => matches!((value, operand), (Value::Bool(a), Value::Bool(b)) if a == b),
        Kind::Pattern => match (value.as_str(), operand.as_str().map(pattern)) {
            (Some(text), Some(Ok(tokens))) => {
                wildcard_match(&tokens, &text.chars().collect::<Vec<_>>())
            }
            _ => false,
        },
        Kind::Type => {
            let holds = match operator {
                IsNull => value.is_null(),
                IsNumeric => value.is_number(),
                IsString => value.is_string(),
                IsBoolean => value.is_boolean(),
                IsTimestamp => value.as_str().and_then(parse_timestamp).is_some(),
                _ => true,
            };
            operand.as_bool() == Some(holds)
        }
    }
}

/// Parses a timestamp as the specification restricts RFC 3339: an
/// upper-case `T` between date and time, and `Z` or a numeric offset.
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.as_bytes().get(10) != Some(&b'T') || text.contains(['t', 'z']) {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

#[derive(Debug, PartialEq)]
pub(crate) enum Token {
    Char(char),
    Star,
}

/// Compiles a StringMatches pattern: `*` matches any run of characters,
/// `\*` a literal star, `\\` a backslash; any other escape is an error.
pub(crate) fn pattern(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => tokens.push(Token::Char(e)),
                _ => return Err("open escape in a StringMatches pattern".to_string()),
            },
            '*' => tokens.push(Token::Star),
            c => tokens.push(Token::Char(c)),
        }
    }
    Ok(tokens)
}

/// Wildcard matching with backtracking to the last star (linear in practice).
fn wildcard_match(pattern: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Char(c)) if Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|t| *t == Token::Star)
}
