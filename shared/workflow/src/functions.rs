//! Evaluation of intrinsic functions (the States Language's Appendix B).
//!
//! Every failure is reported as a message; callers turn it into a
//! `States.IntrinsicFailure`. `States.Hash` is not implemented (it needs
//! MD5/SHA digests this crate does not depend on) and is refused when parsing.

use base64::Engine;
use serde_json::{Map, Value};

use crate::intrinsic::{format_pieces, Arg, Call, Function, Intrinsic, Piece};
use crate::random;

impl Intrinsic {
    /// Invokes the function: Paths in its arguments apply to `input`, or to
    /// `context` for `$$` paths.
    pub(crate) fn evaluate(&self, input: &Value, context: &Value) -> Result<Value, String> {
        evaluate_call(&self.call, input, context)
    }
}

fn evaluate_call(call: &Call, input: &Value, context: &Value) -> Result<Value, String> {
    let mut values = Vec::with_capacity(call.args.len());
    for arg in &call.args {
        values.push(match arg {
            Arg::Path(path) => path.select(input, context)?,
            Arg::Call(inner) => evaluate_call(inner, input, context)?,
            other => other.literal().unwrap_or(Value::Null),
        });
    }
    let arg = |i: usize| values.get(i).unwrap_or(&Value::Null);
    match call.function {
        Function::Format => format(call, &values),
        Function::StringToJson => {
            let text = string(arg(0), "States.StringToJson")?;
            serde_json::from_str(text)
                .map_err(|e| format!("States.StringToJson: the argument is not JSON: {e}"))
        }
        Function::JsonToString => Ok(Value::String(arg(0).to_string())),
        Function::Array => Ok(Value::Array(values.clone())),
        Function::ArrayPartition => {
            let items = array(arg(0), "States.ArrayPartition")?;
            let size = integer(arg(1), "States.ArrayPartition")?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or("States.ArrayPartition: the chunk size must be a positive integer")?;
            Ok(Value::Array(
                items
                    .chunks(size)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        Function::ArrayContains => {
            let items = array(arg(0), "States.ArrayContains")?;
            Ok(Value::Bool(items.iter().any(|v| json_eq(v, arg(1)))))
        }
        Function::ArrayRange => array_range(
            integer(arg(0), "States.ArrayRange")?,
            integer(arg(1), "States.ArrayRange")?,
            integer(arg(2), "States.ArrayRange")?,
        ),
        Function::ArrayGetItem => {
            let items = array(arg(0), "States.ArrayGetItem")?;
            let index = integer(arg(1), "States.ArrayGetItem")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "States.ArrayGetItem: index {index} is out of range for an array of {}",
                        items.len()
                    )
                })
        }
        Function::ArrayLength => Ok(Value::from(array(arg(0), "States.ArrayLength")?.len())),
        Function::ArrayUnique => {
            let mut unique: Vec<Value> = Vec::new();
            for item in array(arg(0), "States.ArrayUnique")? {
                if !unique.iter().any(|u| json_eq(u, item)) {
                    unique.push(item.clone());
                }
            }
            Ok(Value::Array(unique))
        }
        Function::Base64Encode => {
            let text = string(arg(0), "States.Base64Encode")?;
            limit(text, "States.Base64Encode")?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            ))
        }
        Function::Base64Decode => {
            let text = string(arg(0), "States.Base64Decode")?;
            limit(text, "States.Base64Decode")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| format!("States.Base64Decode: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "States.Base64Decode: the decoded data is not UTF-8 text".to_string())
        }
        Function::JsonMerge => {
            let (Value::Object(a), Value::Object(b)) = (arg(0), arg(1)) else {
                return Err("States.JsonMerge: the first two arguments must be objects".to_string());
            };
            let Value::Bool(deep) = arg(2) else {
                return Err("States.JsonMerge: the third argument must be a boolean".to_string());
            };
            Ok(Value::Object(merge(a.clone(), b, *deep)))
        }
        Function::MathRandom => {
            let start = integer(arg(0), "States.MathRandom")?;
            let end = integer(arg(1), "States.MathRandom")?;
            if end <= start {
                return Err("States.MathRandom: the end must be greater than the start".to_string());
            }
            let seed = match values.get(2) {
                Some(v) => Some(integer(v, "States.MathRandom")?),
                None => None,
            };
            let span = end.abs_diff(start);
            let draw = match seed {
                Some(seed) => random::splitmix64(seed as u64),
                None => random::u64().map_err(|e| format!("States.MathRandom: {e}"))?,
            };
            let offset = i64::try_from(draw % span).unwrap_or(0);
            Ok(Value::from(start.saturating_add(offset)))
        }
        Function::MathAdd => {
            let a = integer(arg(0), "States.MathAdd")?;
            let b = integer(arg(1), "States.MathAdd")?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| "States.MathAdd: the sum overflows".to_string())
        }
        Function::StringSplit => {
            let text = string(arg(0), "States.StringSplit")?;
            let delimiters = string(arg(1), "States.StringSplit")?;
            Ok(Value::Array(
                text.split(|c| delimiters.contains(c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ))
        }
        Function::Uuid => random::uuid_v4()
            .map(Value::String)
            .map_err(|e| format!("States.UUID: {e}")),
    }
}

fn format(call: &Call, values: &[Value]) -> Result<Value, String> {
    let template = match call.args.first() {
        Some(Arg::Str { raw, .. }) => raw.clone(),
        _ => string(values.first().unwrap_or(&Value::Null), "States.Format")?.to_string(),
    };
    let pieces = format_pieces(&template).map_err(|e| format!("States.Format: {e}"))?;
    let wanted = pieces
        .iter()
        .filter(|p| matches!(p, Piece::Placeholder))
        .count();
    let args = values.get(1..).unwrap_or_default();
    if wanted != args.len() {
        return Err(format!(
            "States.Format: the template has {wanted} placeholder(s) but {} value(s) were given",
            args.len()
        ));
    }
    let mut out = String::new();
    let mut next = args.iter();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(&text),
            Piece::Placeholder => match next.next() {
                Some(Value::String(s)) => out.push_str(s),
                Some(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => {
                    out.push_str(&v.to_string())
                }
                Some(_) => {
                    return Err("States.Format: a value cannot be an array or an object".to_string())
                }
                None => {}
            },
        }
    }
    Ok(Value::String(out))
}

fn array_range(start: i64, end: i64, step: i64) -> Result<Value, String> {
    if step == 0 {
        return Err("States.ArrayRange: the step cannot be 0".to_string());
    }
    let mut items = Vec::new();
    let mut x = start;
    while (step > 0 && x <= end) || (step < 0 && x >= end) {
        if items.len() == 1000 {
            return Err("States.ArrayRange: the range has more than 1000 items".to_string());
        }
        items.push(Value::from(x));
        match x.checked_add(step) {
            Some(n) => x = n,
            None => break,
        }
    }
    Ok(Value::Array(items))
}

fn merge(mut a: Map<String, Value>, b: &Map<String, Value>, deep: bool) -> Map<String, Value> {
    for (key, value) in b {
        match (a.get_mut(key), value) {
            (Some(Value::Object(left)), Value::Object(right)) if deep => {
                let merged = merge(std::mem::take(left), right, true);
                *left = merged;
            }
            _ => {
                a.insert(key.clone(), value.clone());
            }
        }
    }
    a
}

fn limit(text: &str, function: &str) -> Result<(), String> {
    if text.chars().count() > 10_000 {
        return Err(format!(
            "{function}: the argument is longer than 10,000 characters"
        ));
    }
    Ok(())
}

fn string<'a>(value: &'a Value, function: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("{function}: expected a string, got {value}"))
}

fn array<'a>(value: &'a Value, function: &str) -> Result<&'a Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{function}: expected an array, got {value}"))
}

fn integer(value: &Value, function: &str) -> Result<i64, String> {
    as_integer(value).ok_or_else(|| format!("{function}: expected an integer, got {value}"))
}

/// An integer, also from a float with no fractional part (`2.0`).
pub(crate) fn as_integer(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    if let Some(i) = number.as_i64() {
        return Some(i);
    }
    let f = number.as_f64()?;
    if f.fract() == 0.0 && f >= i64::MIN as f64 && f <= i64::MAX as f64 {
        Some(f as i64)
    } else {
        None
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
