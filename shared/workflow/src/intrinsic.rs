//! Intrinsic functions: parsing the call syntax (`States.Format('{}', $.a)`).
//!
//! Arguments are string literals in apostrophes (escapes `\'`, `\{`, `\}`,
//! `\\`), numbers, `true`/`false`, `null`, Paths (`$...` on the payload
//! template's input, `$$...` on the Context Object) and nested calls. The
//! functions themselves are evaluated in [`crate::functions`].

use std::fmt;

use serde_json::{Number, Value};

use crate::path::Path;

/// A parsed intrinsic function call, such as `States.Format('x{}', $.a)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    text: String,
    pub(crate) call: Call,
}

impl fmt::Display for Intrinsic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub(crate) function: Function,
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// A string literal: as written between the apostrophes (escapes kept,
    /// for `States.Format`) and its value.
    Str {
        raw: String,
        value: String,
    },
    Number(Number),
    Bool(bool),
    Null,
    Path(Path),
    Call(Call),
}

/// The intrinsic functions this interpreter implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Function {
    fn from_name(name: &str) -> Option<(Function, usize, usize)> {
        use Function::*;
        // (function, minimum arguments, maximum arguments)
        Some(match name {
            "States.Format" => (Format, 1, usize::MAX),
            "States.StringToJson" => (StringToJson, 1, 1),
            "States.JsonToString" => (JsonToString, 1, 1),
            "States.Array" => (Array, 0, usize::MAX),
            "States.ArrayPartition" => (ArrayPartition, 2, 2),
            "States.ArrayContains" => (ArrayContains, 2, 2),
            "States.ArrayRange" => (ArrayRange, 3, 3),
            "States.ArrayGetItem" => (ArrayGetItem, 2, 2),
            "States.ArrayLength" => (ArrayLength, 1, 1),
            "States.ArrayUnique" => (ArrayUnique, 1, 1),
            "States.Base64Encode" => (Base64Encode, 1, 1),
            "States.Base64Decode" => (Base64Decode, 1, 1),
            "States.JsonMerge" => (JsonMerge, 3, 3),
            "States.MathRandom" => (MathRandom, 2, 3),
            "States.MathAdd" => (MathAdd, 2, 2),
            "States.StringSplit" => (StringSplit, 2, 2),
            "States.UUID" => (Uuid, 0, 0),
            _ => return None,
        })
    }
}

impl Intrinsic {
    /// Parses an intrinsic function call; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        let call = parser
            .call()
            .map_err(|message| format!("intrinsic function \"{text}\": {message}"))?;
        parser.skip_spaces();
        if parser.pos != parser.chars.len() {
            return Err(format!(
                "intrinsic function \"{text}\": unexpected text after the closing \")\""
            ));
        }
        Ok(Intrinsic {
            text: text.to_string(),
            call,
        })
    }

    /// The call as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn identifier(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    fn call(&mut self) -> Result<Call, String> {
        self.skip_spaces();
        let name = self.identifier();
        if name.is_empty() {
            return Err("expected a function name".to_string());
        }
        let (function, min, max) =
            Function::from_name(&name).ok_or_else(|| format!("unknown function \"{name}\""))?;
        self.skip_spaces();
        if self.peek() != Some('(') {
            return Err(format!("expected \"(\" after \"{name}\""));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_spaces();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_spaces();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(format!("unexpected \"{c}\" in the arguments of {name}"))
                    }
                    None => return Err(format!("missing \")\" closing {name}")),
                }
            }
        }
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(format!(
                "{name} takes {expected} argument(s), not {}",
                args.len()
            ));
        }
        if function == Function::Format {
            if let Some(Arg::Str { raw, .. }) = args.first() {
                let placeholders = format_pieces(raw)?
                    .iter()
                    .filter(|p| matches!(p, Piece::Placeholder))
                    .count();
                if placeholders != args.len() - 1 {
                    return Err(format!(
                        "States.Format has {placeholders} placeholder(s) but {} value(s)",
                        args.len() - 1
                    ));
                }
            }
        }
        Ok(Call { function, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        match self.peek() {
            None => Err("missing argument".to_string()),
            Some('\'') => self.string(),
            Some('$') => self.path(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                let word = self.identifier();
                self.skip_spaces();
                if self.peek() == Some('(') {
                    self.pos = start;
                    return self.call().map(Arg::Call);
                }
                match word.as_str() {
                    "null" => Ok(Arg::Null),
                    "true" => Ok(Arg::Bool(true)),
                    "false" => Ok(Arg::Bool(false)),
                    _ => Err(format!("unexpected argument \"{word}\"")),
                }
            }
            Some(c) => Err(format!("unexpected \"{c}\"")),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1;
        let mut raw = String::new();
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string literal".to_string()),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Arg::Str { raw, value });
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('\'' | '{' | '}' | '\\')) => {
                            raw.push('\\');
                            raw.push(c);
                            value.push(c);
                        }
                        _ => return Err("open escape \"\\\" in a string literal".to_string()),
                    }
                }
                Some(c) => {
                    raw.push(c);
                    value.push(c);
                }
            }
            self.pos += 1;
        }
    }

    fn path(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            match (quote, c) {
                (Some(_), '\\') => self.pos += 1,
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') if depth > 0 => quote = Some(c),
                (None, '[') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ',' | ')') if depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.chars.len());
        let text: String = self.chars[start..end].iter().collect();
        Path::parse(text.trim_end()).map(Arg::Path)
    }

    fn number(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        serde_json::from_str::<Number>(&text)
            .map(Arg::Number)
            .map_err(|_| format!("bad number \"{text}\""))
    }
}

/// A piece of a `States.Format` template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Placeholder,
}

/// Splits a template (escapes still in it) into text and `{}` placeholders.
pub(crate) fn format_pieces(raw: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => text.push(e),
                None => return Err("open escape \"\\\" in the format template".to_string()),
            },
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Placeholder);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Whether the value of a `.$` field or of ErrorPath/CausePath is a Path
/// (begins with `$`) rather than an intrinsic function.
pub(crate) fn is_path(text: &str) -> bool {
    text.starts_with('$')
}

/// Parsed argument helpers shared with [`crate::functions`].
impl Arg {
    pub(crate) fn literal(&self) -> Option<Value> {
        match self {
            Arg::Str { value, .. } => Some(Value::String(value.clone())),
            Arg::Number(n) => Some(Value::Number(n.clone())),
            Arg::Bool(b) => Some(Value::Bool(*b)),
            Arg::Null => Some(Value::Null),
            Arg::Path(_) | Arg::Call(_) => None,
        }
    }
}
