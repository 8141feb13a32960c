//! From JSON to the typed model, validating as it goes.

mod choice;
mod fields;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde_json::Value;

use crate::choice::parse_timestamp;
use crate::error::AslError;
use crate::model::{
    Choice, ChoiceState, Count, FailState, MapState, ParallelState, PassState, State, StateKind,
    StateMachine, SucceedState, TaskState, Transition, WaitFor, WaitState,
};
use crate::path::Path;
use choice::parse_rule;
use fields::Obj;

const TOP_LEVEL: &str = "top level";

impl StateMachine {
    /// Parses and validates a definition (after any
    /// [`substitute`](crate::substitute)).
    pub fn from_json(definition: &str) -> Result<StateMachine, AslError> {
        let value: Value = serde_json::from_str(definition)?;
        StateMachine::from_value(&value)
    }

    /// Parses and validates a definition already read as JSON.
    pub fn from_value(definition: &Value) -> Result<StateMachine, AslError> {
        let mut names = BTreeSet::new();
        parse_machine(definition, TOP_LEVEL, true, &mut names)
    }
}

impl FromStr for StateMachine {
    type Err = AslError;

    fn from_str(definition: &str) -> Result<Self, Self::Err> {
        StateMachine::from_json(definition)
    }
}

/// Parses a machine: the top level (`top`), a branch or an item processor.
fn parse_machine(
    value: &Value,
    location: &str,
    top: bool,
    names: &mut BTreeSet<String>,
) -> Result<StateMachine, AslError> {
    let obj = Obj::new(value, location, "definition")?;
    if top {
        obj.only(&[
            "Comment",
            "StartAt",
            "States",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
        ])?;
    } else {
        obj.only(&[
            "Comment",
            "StartAt",
            "States",
            "ProcessorConfig",
            "QueryLanguage",
        ])?;
    }
    query_language(&obj)?;
    if let Some(version) = obj.string("Version")? {
        if version != "1.0" {
            return Err(obj.invalid("Version", format!("version \"{version}\" is not 1.0")));
        }
    }
    if let Some(config) = obj.get("ProcessorConfig") {
        if !config.is_object() {
            return Err(obj.invalid("ProcessorConfig", "must be a JSON object"));
        }
    }
    let start_at = obj.required_string("StartAt")?.to_string();
    let states_value = obj
        .get("States")
        .ok_or_else(|| AslError::missing(location, "States"))?;
    let states_obj = Obj::new(states_value, location, "States")?;
    if states_obj.map.is_empty() {
        return Err(obj.invalid("States", "must name at least one state"));
    }
    let mut states = BTreeMap::new();
    for (name, state_value) in states_obj.map {
        if !names.insert(name.clone()) {
            return Err(AslError::DuplicateStateName { name: name.clone() });
        }
        if name.chars().count() > 80 {
            return Err(AslError::invalid(
                &format!("state \"{name}\""),
                "name",
                "a state name has at most 80 characters",
            ));
        }
        states.insert(name.clone(), parse_state(name, state_value, names)?);
    }
    let machine = StateMachine {
        comment: obj.string("Comment")?.map(str::to_string),
        start_at,
        states,
        timeout_seconds: if top {
            obj.integer("TimeoutSeconds", true)?
        } else {
            None
        },
    };
    validate::transitions(&machine, location)?;
    Ok(machine)
}

fn query_language(obj: &Obj<'_>) -> Result<(), AslError> {
    match obj.string("QueryLanguage")? {
        None | Some("JSONPath") => Ok(()),
        Some(other) => Err(obj.invalid(
            "QueryLanguage",
            format!("\"{other}\" is not supported; only JSONPath is"),
        )),
    }
}

fn parse_state(name: &str, value: &Value, names: &mut BTreeSet<String>) -> Result<State, AslError> {
    let location = format!("state \"{name}\"");
    let obj = Obj::new(value, &location, "state")?;
    query_language(&obj)?;
    let kind = match obj.required_string("Type")? {
        "Pass" => {
            obj.only(&with_common(&[
                "InputPath",
                "OutputPath",
                "Parameters",
                "Result",
                "ResultPath",
                "Next",
                "End",
            ]))?;
            StateKind::Pass(PassState {
                filters: obj.filters()?,
                parameters: obj.template("Parameters")?,
                result: obj.get("Result").cloned(),
                result_path: obj.result_path("ResultPath")?,
                transition: transition(&obj)?,
            })
        }
        "Task" => parse_task(&obj)?,
        "Choice" => parse_choice(&obj)?,
        "Wait" => parse_wait(&obj)?,
        "Succeed" => {
            obj.only(&with_common(&["InputPath", "OutputPath"]))?;
            StateKind::Succeed(SucceedState {
                filters: obj.filters()?,
            })
        }
        "Fail" => {
            obj.only(&with_common(&["Error", "ErrorPath", "Cause", "CausePath"]))?;
            StateKind::Fail(FailState {
                error: obj.fail_field("Error")?,
                cause: obj.fail_field("Cause")?,
            })
        }
        "Parallel" => {
            obj.only(&with_common(&[
                "InputPath",
                "OutputPath",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Branches",
                "Next",
                "End",
            ]))?;
            let branches = match obj.get("Branches") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .map(|(i, branch)| {
                        parse_machine(
                            branch,
                            &format!("Parallel \"{name}\" Branches[{i}]"),
                            false,
                            names,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => {
                    return Err(obj.invalid("Branches", "must be a non-empty array of objects"))
                }
                None => return Err(AslError::missing(&location, "Branches")),
            };
            StateKind::Parallel(ParallelState {
                filters: obj.filters()?,
                results: obj.results("Parameters")?,
                branches,
                retry: obj.retriers()?,
                catch: obj.catchers()?,
                transition: transition(&obj)?,
            })
        }
        "Map" => parse_map(name, &obj, names)?,
        other => return Err(obj.invalid("Type", format!("unknown state type \"{other}\""))),
    };
    Ok(State {
        name: name.to_string(),
        comment: obj.string("Comment")?.map(str::to_string),
        kind,
    })
}

fn with_common(fields: &[&'static str]) -> Vec<&'static str> {
    let mut all = vec!["Type", "Comment", "QueryLanguage"];
    all.extend_from_slice(fields);
    all
}

fn transition(obj: &Obj<'_>) -> Result<Transition, AslError> {
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(obj.invalid("End", "must be a boolean")),
    };
    match (obj.string("Next")?, end) {
        (Some(_), true) => {
            Err(obj.invalid("End", "a state has \"Next\" or \"End\": true, not both"))
        }
        (Some(next), false) => Ok(Transition::Next(next.to_string())),
        (None, true) => Ok(Transition::End),
        (None, false) => Err(obj.invalid(
            "Next",
            "a non-terminal state needs \"Next\" (or \"End\": true)",
        )),
    }
}

fn parse_task(obj: &Obj<'_>) -> Result<StateKind, AslError> {
    obj.only(&with_common(&[
        "Resource",
        "InputPath",
        "OutputPath",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
        "Next",
        "End",
    ]))?;
    let timeout = obj.count("TimeoutSeconds", true)?;
    let heartbeat = obj.count("HeartbeatSeconds", true)?;
    if let (Some(Count::Fixed(t)), Some(Count::Fixed(h))) = (&timeout, &heartbeat) {
        if h >= t {
            return Err(obj.invalid(
                "HeartbeatSeconds",
                format!("must be smaller than TimeoutSeconds ({t})"),
            ));
        }
    }
    Ok(StateKind::Task(TaskState {
        resource: obj.required_string("Resource")?.to_string(),
        filters: obj.filters()?,
        results: obj.results("Parameters")?,
        retry: obj.retriers()?,
        catch: obj.catchers()?,
        timeout,
        heartbeat,
        transition: transition(obj)?,
    }))
}

fn parse_choice(obj: &Obj<'_>) -> Result<StateKind, AslError> {
    if obj.has("End") || obj.has("Next") {
        let field = if obj.has("End") { "End" } else { "Next" };
        return Err(obj.invalid(
            field,
            "a Choice State transitions by its rules and \"Default\" only",
        ));
    }
    obj.only(&with_common(&[
        "InputPath",
        "OutputPath",
        "Choices",
        "Default",
    ]))?;
    let items = match obj.get("Choices") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(obj.invalid("Choices", "must be a non-empty array of Choice Rules")),
        None => return Err(AslError::missing(&obj.location, "Choices")),
    };
    let mut choices = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("Choices[{i}]");
        let rule = parse_rule(item, &obj.location, &field, true)?;
        let next = item
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| AslError::missing(&obj.location, &format!("{field}.Next")))?;
        choices.push(Choice {
            rule,
            next: next.to_string(),
        });
    }
    Ok(StateKind::Choice(ChoiceState {
        filters: obj.filters()?,
        choices,
        default: obj.string("Default")?.map(str::to_string),
    }))
}

fn parse_wait(obj: &Obj<'_>) -> Result<StateKind, AslError> {
    obj.only(&with_common(&[
        "InputPath",
        "OutputPath",
        "Seconds",
        "SecondsPath",
        "Timestamp",
        "TimestampPath",
        "Next",
        "End",
    ]))?;
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|f| obj.has(f))
        .collect();
    let wait = match given.as_slice() {
        ["Seconds"] => WaitFor::Seconds(obj.integer("Seconds", false)?.unwrap_or(0)),
        ["SecondsPath"] => WaitFor::SecondsPath(
            obj.reference_path("SecondsPath")?
                .unwrap_or_else(Path::root),
        ),
        ["Timestamp"] => {
            let text = obj.required_string("Timestamp")?;
            WaitFor::Timestamp(parse_timestamp(text).ok_or_else(|| {
                obj.invalid(
                    "Timestamp",
                    format!("\"{text}\" is not an RFC 3339 timestamp such as 2016-03-14T01:59:00Z"),
                )
            })?)
        }
        ["TimestampPath"] => WaitFor::TimestampPath(
            obj.reference_path("TimestampPath")?
                .unwrap_or_else(Path::root),
        ),
        _ => {
            return Err(obj.invalid(
                "Seconds",
                "a Wait State has exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
            ))
        }
    };
    Ok(StateKind::Wait(WaitState {
        filters: obj.filters()?,
        wait,
        transition: transition(obj)?,
    }))
}

fn parse_map(
    name: &str,
    obj: &Obj<'_>,
    names: &mut BTreeSet<String>,
) -> Result<StateKind, AslError> {
    obj.only(&with_common(&[
        "InputPath",
        "OutputPath",
        "ItemsPath",
        "ItemSelector",
        "Parameters",
        "ItemProcessor",
        "Iterator",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
        "Next",
        "End",
    ]))?;
    let selector_field = match (obj.has("ItemSelector"), obj.has("Parameters")) {
        (true, true) => {
            return Err(obj.invalid("Parameters", "cannot be used with \"ItemSelector\""))
        }
        (false, true) => "Parameters",
        _ => "ItemSelector",
    };
    let (processor_field, processor) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return Err(obj.invalid("Iterator", "cannot be used with \"ItemProcessor\""))
        }
        (Some(p), None) => ("ItemProcessor", p),
        (None, Some(p)) => ("Iterator", p),
        (None, None) => return Err(AslError::missing(&obj.location, "ItemProcessor")),
    };
    let processor = parse_machine(
        processor,
        &format!("Map \"{name}\" {processor_field}"),
        false,
        names,
    )?;
    Ok(StateKind::Map(MapState {
        filters: obj.filters()?,
        results: obj.results(selector_field)?,
        items_path: obj.reference_path("ItemsPath")?.unwrap_or_else(Path::root),
        processor,
        max_concurrency: obj
            .count("MaxConcurrency", false)?
            .unwrap_or(Count::Fixed(0)),
        retry: obj.retriers()?,
        catch: obj.catchers()?,
        transition: transition(obj)?,
    }))
}
