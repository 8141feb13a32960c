//! Input and output processing, in the specification's order: InputPath,
//! Parameters, (the state's work), ResultSelector, ResultPath, OutputPath.
//!
//! Failures map to the error names the specification gives: InputPath and
//! OutputPath to `States.Runtime`, Payload Templates to
//! `States.ParameterPathFailure` / `States.IntrinsicFailure`, ResultPath to
//! `States.ResultPathMatchFailure`.

use serde_json::{Map, Value};

use crate::error::{names, StateError};
use crate::path::Path;
use crate::template::Template;

/// Applies InputPath to the raw input (`null`: the effective input is `{}`).
pub(crate) fn input_path(
    path: Option<&Path>,
    raw: &Value,
    context: &Value,
) -> Result<Value, StateError> {
    filter(path, raw, context, "InputPath")
}

/// Applies OutputPath to the output (`null`: the effective output is `{}`).
pub(crate) fn output_path(
    path: Option<&Path>,
    output: Value,
    context: &Value,
) -> Result<Value, StateError> {
    match path {
        Some(p) if p.is_root() => Ok(output),
        _ => filter(path, &output, context, "OutputPath"),
    }
}

fn filter(
    path: Option<&Path>,
    value: &Value,
    context: &Value,
    field: &str,
) -> Result<Value, StateError> {
    match path {
        None => Ok(Value::Object(Map::new())),
        Some(p) if p.is_root() => Ok(value.clone()),
        Some(p) => p
            .select(value, context)
            .map_err(|e| StateError::runtime(format!("{field}: {e}"))),
    }
}

/// Applies a Payload Template (Parameters, ResultSelector), if any.
pub(crate) fn template(
    template: Option<&Template>,
    input: Value,
    context: &Value,
) -> Result<Value, StateError> {
    match template {
        None => Ok(input),
        Some(t) => t.evaluate(&input, context),
    }
}

/// Combines the raw input with the result at ResultPath (`null`: the raw
/// input is kept and the result discarded).
pub(crate) fn result_path(
    path: Option<&Path>,
    raw: Value,
    result: Value,
) -> Result<Value, StateError> {
    match path {
        None => Ok(raw),
        Some(p) => p
            .set(raw, result)
            .map_err(|e| StateError::new(names::RESULT_PATH_MATCH_FAILURE, e)),
    }
}
