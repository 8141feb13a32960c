//! Typed access to the fields of one JSON object of a definition, with
//! errors that name the location and the field.

use serde_json::{Map, Value};

use crate::error::AslError;
use crate::intrinsic::{is_path, Intrinsic};
use crate::model::{Catcher, Count, FailField, Filters, Jitter, ResultHandling, Retrier};
use crate::path::Path;
use crate::template::Template;

/// Fields of the States Language this interpreter refuses rather than ignores.
const UNSUPPORTED: &[&str] = &[
    "Assign",
    "Arguments",
    "Output",
    "Items",
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "Label",
];

pub(crate) struct Obj<'a> {
    pub(crate) map: &'a Map<String, Value>,
    pub(crate) location: String,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(value: &'a Value, location: &str, what: &str) -> Result<Self, AslError> {
        match value.as_object() {
            Some(map) => Ok(Obj {
                map,
                location: location.to_string(),
            }),
            None => Err(AslError::invalid(location, what, "must be a JSON object")),
        }
    }

    /// Refuses fields outside `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), AslError> {
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(AslError::Unsupported {
                    location: self.location.clone(),
                    field: key.clone(),
                });
            }
            return Err(AslError::UnknownField {
                location: self.location.clone(),
                field: key.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    pub(crate) fn invalid(&self, field: &str, message: impl Into<String>) -> AslError {
        AslError::invalid(&self.location, field, message)
    }

    pub(crate) fn string(&self, field: &str) -> Result<Option<&'a str>, AslError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(field, "must be a string")),
        }
    }

    pub(crate) fn required_string(&self, field: &str) -> Result<&'a str, AslError> {
        self.string(field)?
            .ok_or_else(|| AslError::missing(&self.location, field))
    }

    /// A non-negative integer; `positive` refuses 0.
    pub(crate) fn integer(&self, field: &str, positive: bool) -> Result<Option<u64>, AslError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 || !positive => Ok(Some(n)),
                _ if positive => Err(self.invalid(field, "must be a positive integer")),
                _ => Err(self.invalid(field, "must be a non-negative integer")),
            },
        }
    }

    /// A path field such as InputPath: absent is `$`, `null` is `None`.
    pub(crate) fn path_or_null(&self, field: &str) -> Result<Option<Path>, AslError> {
        match self.map.get(field) {
            None => Ok(Some(Path::root())),
            Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Path::parse(text)
                .map(Some)
                .map_err(|e| self.invalid(field, e)),
            Some(_) => Err(self.invalid(field, "must be a Path or null")),
        }
    }

    /// A Reference Path field (ItemsPath, SecondsPath, ...); absent is `None`.
    pub(crate) fn reference_path(&self, field: &str) -> Result<Option<Path>, AslError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => {
                let path = Path::parse(text).map_err(|e| self.invalid(field, e))?;
                if !path.is_reference() {
                    return Err(self.invalid(
                        field,
                        format!("\"{text}\" must be a Reference Path (names and indices only)"),
                    ));
                }
                Ok(Some(path))
            }
            Some(_) => Err(self.invalid(field, "must be a Reference Path")),
        }
    }

    /// `ResultPath`: absent is `$`, `null` is `None`; a Reference Path into
    /// the input, never the Context Object.
    pub(crate) fn result_path(&self, field: &str) -> Result<Option<Path>, AslError> {
        match self.map.get(field) {
            None => Ok(Some(Path::root())),
            Some(Value::Null) => Ok(None),
            Some(_) => {
                let path = self.reference_path(field)?.unwrap_or_else(Path::root);
                if path.is_context() {
                    return Err(self.invalid(field, "must not begin with \"$$\""));
                }
                Ok(Some(path))
            }
        }
    }

    pub(crate) fn template(&self, field: &str) -> Result<Option<Template>, AslError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(value) => Template::compile(value)
                .map(Some)
                .map_err(|e| self.invalid(field, e)),
        }
    }

    pub(crate) fn filters(&self) -> Result<Filters, AslError> {
        Ok(Filters {
            input_path: self.path_or_null("InputPath")?,
            output_path: self.path_or_null("OutputPath")?,
        })
    }

    pub(crate) fn results(&self, parameters_field: &str) -> Result<ResultHandling, AslError> {
        Ok(ResultHandling {
            parameters: self.template(parameters_field)?,
            result_selector: self.template("ResultSelector")?,
            result_path: self.result_path("ResultPath")?,
        })
    }

    /// `field` or `field`Path, not both.
    pub(crate) fn count(&self, field: &str, positive: bool) -> Result<Option<Count>, AslError> {
        let path_field = format!("{field}Path");
        match (
            self.integer(field, positive)?,
            self.reference_path(&path_field)?,
        ) {
            (Some(_), Some(_)) => {
                Err(self.invalid(&path_field, format!("cannot be used with \"{field}\"")))
            }
            (Some(n), None) => Ok(Some(Count::Fixed(n))),
            (None, Some(path)) => Ok(Some(Count::Path(path))),
            (None, None) => Ok(None),
        }
    }

    /// A Fail State's `Error`/`ErrorPath` or `Cause`/`CausePath`.
    pub(crate) fn fail_field(&self, field: &str) -> Result<Option<FailField>, AslError> {
        let path_field = format!("{field}Path");
        let literal = self.string(field)?;
        let dynamic = self.string(&path_field)?;
        match (literal, dynamic) {
            (Some(_), Some(_)) => {
                Err(self.invalid(&path_field, format!("cannot be used with \"{field}\"")))
            }
            (Some(text), None) => Ok(Some(FailField::Literal(text.to_string()))),
            (None, Some(text)) if is_path(text) => Ok(Some(FailField::Path(
                self.reference_path(&path_field)?.unwrap_or_else(Path::root),
            ))),
            (None, Some(text)) => Intrinsic::parse(text)
                .map(|call| Some(FailField::Intrinsic(call)))
                .map_err(|e| self.invalid(&path_field, e)),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn retriers(&self) -> Result<Vec<Retrier>, AslError> {
        let items = self.array("Retry")?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("Retry[{i}]");
            let obj = Obj::new(item, &self.location, &field)?.nested(&field);
            obj.only(&[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ])?;
            let error_equals = error_equals(&obj, &self.location, &field, i + 1 == items.len())?;
            let backoff_rate = match obj.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(rate) if rate >= 1.0 && rate.is_finite() => rate,
                    _ => return Err(obj.invalid("BackoffRate", "must be a number of at least 1.0")),
                },
            };
            let max_attempts = obj.integer("MaxAttempts", false)?.unwrap_or(3);
            let jitter = match obj.string("JitterStrategy")? {
                None | Some("NONE") => Jitter::None,
                Some("FULL") => Jitter::Full,
                Some(other) => {
                    return Err(
                        obj.invalid("JitterStrategy", format!("\"{other}\" is not FULL or NONE"))
                    )
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds: obj.integer("IntervalSeconds", true)?.unwrap_or(1),
                max_attempts: u32::try_from(max_attempts)
                    .map_err(|_| obj.invalid("MaxAttempts", "is too large"))?,
                backoff_rate,
                max_delay_seconds: obj.integer("MaxDelaySeconds", true)?,
                jitter,
            });
        }
        Ok(out)
    }

    pub(crate) fn catchers(&self) -> Result<Vec<Catcher>, AslError> {
        let items = self.array("Catch")?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("Catch[{i}]");
            let obj = Obj::new(item, &self.location, &field)?.nested(&field);
            obj.only(&["ErrorEquals", "Next", "ResultPath", "Comment"])?;
            out.push(Catcher {
                error_equals: error_equals(&obj, &self.location, &field, i + 1 == items.len())?,
                next: obj.required_string("Next")?.to_string(),
                result_path: obj.result_path("ResultPath")?,
            });
        }
        Ok(out)
    }

    fn array(&self, field: &str) -> Result<&'a [Value], AslError> {
        match self.map.get(field) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.invalid(field, "must be an array")),
        }
    }

    /// The same object, its errors naming fields as `prefix.Field`.
    fn nested(self, prefix: &str) -> Obj<'a> {
        Obj {
            map: self.map,
            location: format!("{}, {prefix}", self.location),
        }
    }
}

fn error_equals(
    obj: &Obj<'_>,
    location: &str,
    field: &str,
    last: bool,
) -> Result<Vec<String>, AslError> {
    let names: Vec<String> = match obj.get("ErrorEquals") {
        None => return Err(AslError::missing(location, &format!("{field}.ErrorEquals"))),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| obj.invalid("ErrorEquals", "must hold only strings"))?,
        Some(_) => {
            return Err(obj.invalid("ErrorEquals", "must be a non-empty array of error names"))
        }
    };
    if names.iter().any(|n| n == crate::error::names::ALL) && (names.len() > 1 || !last) {
        return Err(obj.invalid(
            "ErrorEquals",
            "\"States.ALL\" must appear alone, in the last Retrier or Catcher",
        ));
    }
    Ok(names)
}
