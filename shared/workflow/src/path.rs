//! Paths: the JSONPath subset of the States Language.
//!
//! A [`Path`] begins with `$` (the input) or `$$` (the Context Object) and is
//! followed by segments: `.name` (a backslash escapes the next character),
//! `['name']` / `["name"]`, `[0]` (negative indices count from the end),
//! `.*` / `[*]`, slices `[start:end:step]` and unions `[0,1]` / `['a','b']`.
//! A path made only of names and indices is a Reference Path: it selects a
//! single node. Other paths select a list, gathered into an array as the
//! specification prescribes. Filters (`[?(...)]`), scripts and recursive
//! descent (`..`) are not supported and are refused when parsing.

use std::fmt;

use serde_json::{Map, Value};

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    context: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, i64),
    Names(Vec<String>),
    Indices(Vec<i64>),
}

impl Segment {
    fn is_definite(&self) -> bool {
        matches!(self, Segment::Field(_) | Segment::Index(_))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// `$`, the whole input.
    pub fn root() -> Path {
        Path {
            text: "$".to_string(),
            context: false,
            segments: Vec::new(),
        }
    }

    /// Parses a path; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = match text.strip_prefix('$') {
            Some(r) if r.starts_with('$') => (true, r),
            Some(_) => (false, text),
            None => return Err(format!("path \"{text}\" must begin with \"$\"")),
        };
        let chars: Vec<char> = rest.chars().skip(1).collect();
        let mut segments = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    match chars.get(i) {
                        None => return Err(format!("path \"{text}\" ends with \".\"")),
                        Some('.') => {
                            return Err(format!(
                                "path \"{text}\": recursive descent (\"..\") is not supported"
                            ))
                        }
                        Some('*') => {
                            segments.push(Segment::Wildcard);
                            i += 1;
                        }
                        Some(_) => {
                            let mut name = String::new();
                            while let Some(&c) = chars.get(i) {
                                if c == '.' || c == '[' {
                                    break;
                                }
                                if c == '\\' {
                                    i += 1;
                                    match chars.get(i) {
                                        Some(&e) => name.push(e),
                                        None => {
                                            return Err(format!(
                                                "path \"{text}\" ends with an open escape \"\\\""
                                            ))
                                        }
                                    }
                                } else {
                                    name.push(c);
                                }
                                i += 1;
                            }
                            segments.push(Segment::Field(name));
                        }
                    }
                }
                '[' => {
                    let (segment, next) = parse_bracket(&chars, i + 1)
                        .map_err(|message| format!("path \"{text}\": {message}"))?;
                    segments.push(segment);
                    i = next;
                }
                c => {
                    return Err(format!(
                        "path \"{text}\": unexpected \"{c}\" (expected \".\" or \"[\")"
                    ))
                }
            }
        }
        Ok(Path {
            text: text.to_string(),
            context,
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path applies to the Context Object (`$$...`).
    pub fn is_context(&self) -> bool {
        self.context
    }

    /// Whether the path is a Reference Path (selects one node at most).
    pub fn is_reference(&self) -> bool {
        self.segments.iter().all(Segment::is_definite)
    }

    /// Whether the path is `$` itself.
    pub fn is_root(&self) -> bool {
        !self.context && self.segments.is_empty()
    }

    /// The node a Reference Path selects, if any (`None` for other paths).
    pub(crate) fn lookup<'a>(&self, input: &'a Value, context: &'a Value) -> Option<&'a Value> {
        let mut node = if self.context { context } else { input };
        for segment in &self.segments {
            node = match segment {
                Segment::Field(name) => node.as_object()?.get(name)?,
                Segment::Index(index) => {
                    let array = node.as_array()?;
                    array.get(resolve_index(*index, array.len())?)?
                }
                _ => return None,
            };
        }
        Some(node)
    }

    /// Applies the path: a Reference Path yields its node (an error when it
    /// selects nothing), any other path the array of nodes it selects.
    pub(crate) fn select(&self, input: &Value, context: &Value) -> Result<Value, String> {
        if self.is_reference() {
            return self.lookup(input, context).cloned().ok_or_else(|| {
                format!(
                    "the path \"{}\" selects nothing in {}",
                    self.text,
                    describe(if self.context { context } else { input })
                )
            });
        }
        let mut nodes: Vec<&Value> = vec![if self.context { context } else { input }];
        for segment in &self.segments {
            let mut next = Vec::new();
            for node in nodes {
                select_segment(segment, node, &mut next);
            }
            nodes = next;
        }
        Ok(Value::Array(nodes.into_iter().cloned().collect()))
    }

    /// Places `value` in `target` at this Reference Path, creating missing
    /// object fields on the way (ResultPath semantics).
    pub(crate) fn set(&self, target: Value, value: Value) -> Result<Value, String> {
        if self.context || !self.is_reference() {
            return Err(format!(
                "\"{}\" is not a Reference Path into the input",
                self.text
            ));
        }
        if self.segments.is_empty() {
            return Ok(value);
        }
        let mut target = target;
        set_in(&mut target, &self.segments, value)
            .map_err(|message| format!("cannot apply ResultPath \"{}\": {message}", self.text))?;
        Ok(target)
    }
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn parse_bracket(chars: &[char], start: usize) -> Result<(Segment, usize), String> {
    let mut i = skip_spaces(chars, start);
    match chars.get(i) {
        Some('\'') | Some('"') => {
            let mut names = Vec::new();
            loop {
                let quote = match chars.get(i) {
                    Some(&q @ ('\'' | '"')) => q,
                    _ => return Err("expected a quoted name".to_string()),
                };
                i += 1;
                let mut name = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted name".to_string()),
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some(&c) => name.push(c),
                                None => return Err("unterminated quoted name".to_string()),
                            }
                        }
                        Some(&c) if c == quote => break,
                        Some(&c) => name.push(c),
                    }
                    i += 1;
                }
                names.push(name);
                i = skip_spaces(chars, i + 1);
                match chars.get(i) {
                    Some(',') => i = skip_spaces(chars, i + 1),
                    Some(']') => break,
                    _ => return Err("expected \",\" or \"]\" after a quoted name".to_string()),
                }
            }
            let segment = if names.len() == 1 {
                Segment::Field(names.remove(0))
            } else {
                Segment::Names(names)
            };
            Ok((segment, i + 1))
        }
        Some('*') => {
            i = skip_spaces(chars, i + 1);
            if chars.get(i) != Some(&']') {
                return Err("expected \"]\" after \"*\"".to_string());
            }
            Ok((Segment::Wildcard, i + 1))
        }
        Some('?') | Some('(') => Err("filter and script expressions are not supported".to_string()),
        _ => {
            let end = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .map(|p| p + i)
                .ok_or_else(|| "unterminated \"[\"".to_string())?;
            let inner: String = chars[i..end].iter().collect();
            let segment = if inner.contains(':') {
                let parts: Vec<&str> = inner.split(':').collect();
                if parts.len() > 3 {
                    return Err(format!("bad slice \"[{inner}]\""));
                }
                let bound = |s: Option<&&str>| -> Result<Option<i64>, String> {
                    match s.map(|s| s.trim()) {
                        None | Some("") => Ok(None),
                        Some(n) => n
                            .parse()
                            .map(Some)
                            .map_err(|_| format!("bad slice \"[{inner}]\"")),
                    }
                };
                let step = bound(parts.get(2))?.unwrap_or(1);
                if step == 0 {
                    return Err("a slice step cannot be 0".to_string());
                }
                Segment::Slice(bound(parts.first())?, bound(parts.get(1))?, step)
            } else if inner.contains(',') {
                let indices = inner
                    .split(',')
                    .map(|s| s.trim().parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("bad index list \"[{inner}]\""))?;
                Segment::Indices(indices)
            } else {
                let index = inner
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("bad index \"[{inner}]\""))?;
                Segment::Index(index)
            };
            Ok((segment, end + 1))
        }
    }
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let resolved = if index < 0 { len + index } else { index };
    if (0..len).contains(&resolved) {
        usize::try_from(resolved).ok()
    } else {
        None
    }
}

fn select_segment<'a>(segment: &Segment, node: &'a Value, out: &mut Vec<&'a Value>) {
    match (segment, node) {
        (Segment::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Segment::Names(names), Value::Object(map)) => {
            out.extend(names.iter().filter_map(|n| map.get(n)))
        }
        (Segment::Index(index), Value::Array(items)) => {
            out.extend(resolve_index(*index, items.len()).and_then(|i| items.get(i)))
        }
        (Segment::Indices(indices), Value::Array(items)) => out.extend(
            indices
                .iter()
                .filter_map(|i| resolve_index(*i, items.len()).and_then(|i| items.get(i))),
        ),
        (Segment::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Segment::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Segment::Slice(start, end, step), Value::Array(items)) => {
            for i in slice_indices(items.len(), *start, *end, *step) {
                out.extend(items.get(i));
            }
        }
        _ => {}
    }
}

/// Python-style slice indices.
fn slice_indices(len: usize, start: Option<i64>, end: Option<i64>, step: i64) -> Vec<usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: i64, low: i64, high: i64| v.max(low).min(high);
    let norm = |v: i64| if v < 0 { v + len } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let mut i = clamp(start.map_or(0, norm), 0, len);
        let stop = clamp(end.map_or(len, norm), 0, len);
        while i < stop {
            out.extend(usize::try_from(i).ok());
            i += step;
        }
    } else {
        let mut i = clamp(start.map_or(len - 1, norm), -1, len - 1);
        let stop = clamp(end.map_or(-1, norm), -1, len - 1);
        while i > stop {
            out.extend(usize::try_from(i).ok());
            i += step;
        }
    }
    out
}

fn set_in(node: &mut Value, segments: &[Segment], value: Value) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        *node = value;
        return Ok(());
    };
    match first {
        Segment::Field(name) => {
            let Value::Object(map) = node else {
                return Err(format!("cannot add field \"{name}\" to {}", describe(node)));
            };
            if rest.is_empty() {
                map.insert(name.clone(), value);
                return Ok(());
            }
            let child = map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            set_in(child, rest, value)
        }
        Segment::Index(index) => {
            let Value::Array(items) = node else {
                return Err(format!("cannot index {} with [{index}]", describe(node)));
            };
            let len = items.len();
            let child = resolve_index(*index, len)
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("index [{index}] is out of range for an array of {len}"))?;
            set_in(child, rest, value)
        }
        _ => Err("not a Reference Path".to_string()),
    }
}
