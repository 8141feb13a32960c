//! Payload Templates: `Parameters`, `ResultSelector` and `ItemSelector`.
//!
//! A field whose name ends in `.$` is renamed without the suffix and its value
//! replaced: a value beginning with `$` is a Path applied to the template's
//! input (`$$` to the Context Object), any other value an intrinsic function.
//! This holds however deeply the field is nested, inside arrays too.

use serde_json::{Map, Value};

use crate::error::{names, StateError};
use crate::intrinsic::{is_path, Intrinsic};
use crate::path::Path;

/// A compiled Payload Template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Path { field: String, path: Path },
    Intrinsic { field: String, call: Intrinsic },
}

impl Template {
    /// Compiles a template, which must be a JSON object; the error names the
    /// offending field.
    pub fn compile(value: &Value) -> Result<Template, String> {
        if !value.is_object() {
            return Err("a Payload Template must be a JSON object".to_string());
        }
        Ok(Template {
            node: compile(value, "")?,
        })
    }

    /// Produces the payload: Paths apply to `input` (or `context`).
    ///
    /// A Path that selects nothing fails with `States.ParameterPathFailure`,
    /// an intrinsic function with `States.IntrinsicFailure`.
    pub(crate) fn evaluate(&self, input: &Value, context: &Value) -> Result<Value, StateError> {
        evaluate(&self.node, input, context)
    }
}

fn compile(value: &Value, at: &str) -> Result<Node, String> {
    match value {
        Value::Object(map) => {
            if !has_dynamic_fields(value) {
                return Ok(Node::Literal(value.clone()));
            }
            let mut fields: Vec<(String, Node)> = Vec::with_capacity(map.len());
            for (key, child) in map {
                let field = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let (name, node) = match key.strip_suffix(".$") {
                    Some(name) => {
                        let Some(text) = child.as_str() else {
                            return Err(format!(
                                "\"{field}\" must be a string (a Path or an intrinsic function)"
                            ));
                        };
                        let node = if is_path(text) {
                            let path =
                                Path::parse(text).map_err(|e| format!("\"{field}\": {e}"))?;
                            Node::Path {
                                field: field.clone(),
                                path,
                            }
                        } else {
                            let call =
                                Intrinsic::parse(text).map_err(|e| format!("\"{field}\": {e}"))?;
                            Node::Intrinsic {
                                field: field.clone(),
                                call,
                            }
                        };
                        (name.to_string(), node)
                    }
                    None => (key.clone(), compile(child, &field)?),
                };
                if fields.iter().any(|(existing, _)| *existing == name) {
                    return Err(format!(
                        "\"{field}\": field \"{name}\" appears twice once \".$\" is removed"
                    ));
                }
                fields.push((name, node));
            }
            Ok(Node::Object(fields))
        }
        Value::Array(items) if has_dynamic_fields(value) => Ok(Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| compile(item, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(Node::Literal(other.clone())),
    }
}

fn has_dynamic_fields(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.ends_with(".$") || has_dynamic_fields(v)),
        Value::Array(items) => items.iter().any(has_dynamic_fields),
        _ => false,
    }
}

fn evaluate(node: &Node, input: &Value, context: &Value) -> Result<Value, StateError> {
    match node {
        Node::Literal(value) => Ok(value.clone()),
        Node::Object(fields) => {
            let mut map = Map::new();
            for (name, child) in fields {
                map.insert(name.clone(), evaluate(child, input, context)?);
            }
            Ok(Value::Object(map))
        }
        Node::Array(items) => items
            .iter()
            .map(|item| evaluate(item, input, context))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Node::Path { field, path } => path.select(input, context).map_err(|e| {
            StateError::new(
                names::PARAMETER_PATH_FAILURE,
                format!("field \"{field}.$\": {e}"),
            )
        }),
        Node::Intrinsic { field, call } => call.evaluate(input, context).map_err(|e| {
            StateError::new(
                names::INTRINSIC_FAILURE,
                format!("field \"{field}.$\": {e}"),
            )
        }),
    }
}
