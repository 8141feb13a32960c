//! The infrastructure agrees with itself and with docs/workflows.md: the state
//! machine definitions (`infra/statemachine/*.asl.json`), the SAM template
//! (`infra/template.yaml`) and the sample events (`events/`).
//!
//! `cargo test -p lifeboat-tests --test infra`; needs no service. The template's
//! CloudFormation rules are checked by `tests/lint-infra` (cfn-lint).

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const LAMBDA_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

fn root() -> PathBuf {
    lifeboat_tests::repo_root()
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_json(path: &Path) -> Result<Json> {
    serde_json::from_str(&read(path)?).with_context(|| format!("parsing {}", path.display()))
}

fn template() -> Result<Yaml> {
    let path = root().join("infra/template.yaml");
    serde_yaml::from_str(&read(&path)?).with_context(|| format!("parsing {}", path.display()))
}

/// One row of the functions table of docs/workflows.md.
#[derive(Debug)]
struct Row {
    binary: String,
    resource: String,
    result_paths: Vec<String>,
    key: Option<String>,
}

/// The functions table of docs/workflows.md, the contract.
fn contract() -> Result<Vec<Row>> {
    let path = root().join("docs/workflows.md");
    let mut rows = Vec::new();
    for line in read(&path)?.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 5 || !cells[1].starts_with("`lifeboat-") {
            continue;
        }
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let (binary, resource) = (ticked(cells[1]), ticked(cells[3]));
        ensure!(
            binary.len() == 1 && resource.len() == 1,
            "unexpected row in {}: {line}",
            path.display()
        );
        rows.push(Row {
            binary: binary[0].clone(),
            resource: resource[0].clone(),
            result_paths: ticked(cells[2]),
            key: ticked(cells[4]).into_iter().next(),
        });
    }
    ensure!(
        rows.len() >= 10,
        "found only {} function rows in {}",
        rows.len(),
        path.display()
    );
    Ok(rows)
}

// ------------------------------------------------------------------ ASL

/// Every `${Key}` in the string values of a definition.
fn substitution_keys(value: &Json, keys: &mut BTreeSet<String>) {
    match value {
        Json::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        keys.insert(after[..end].to_string());
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| substitution_keys(v, keys)),
        Json::Object(map) => map.values().for_each(|v| substitution_keys(v, keys)),
        _ => {}
    }
}

/// The state machines of the template, by logical id, with their definition files.
fn definitions() -> Result<Vec<(String, PathBuf)>> {
    Ok(vec![
        (
            "BackupStateMachine".into(),
            root().join("infra/statemachine/backup.asl.json"),
        ),
        (
            "RestoreStateMachine".into(),
            root().join("infra/statemachine/restore.asl.json"),
        ),
        (
            "VerifyStateMachine".into(),
            root().join("infra/statemachine/verify.asl.json"),
        ),
    ])
}

fn states(scope: &Json) -> Result<&serde_json::Map<String, Json>> {
    scope
        .get("States")
        .and_then(Json::as_object)
        .context("a state machine or Map without States")
}

fn str_list(value: Option<&Json>) -> Vec<&str> {
    value
        .and_then(Json::as_array)
        .map(|items| items.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

/// Checks one scope (the machine, or a Map's ItemProcessor) and the scopes in it.
/// `top` is true for the machine itself, where every Task and Map must catch.
fn check_scope(file: &str, scope: &Json, top: bool, contract: &[Row]) -> Result<()> {
    let states = states(scope)?;
    let start = scope
        .get("StartAt")
        .and_then(Json::as_str)
        .context("no StartAt")?;
    ensure!(
        states.contains_key(start),
        "{file}: StartAt {start} is no state"
    );
    for (name, state) in states {
        let at = format!("{file}: state {name}");
        let kind = state
            .get("Type")
            .and_then(Json::as_str)
            .with_context(|| format!("{at}: no Type"))?;
        ensure!(
            state
                .get("Comment")
                .and_then(Json::as_str)
                .is_some_and(|c| !c.is_empty()),
            "{at}: no Comment"
        );
        let mut targets: Vec<&str> = Vec::new();
        targets.extend(state.get("Next").and_then(Json::as_str));
        targets.extend(state.get("Default").and_then(Json::as_str));
        for rule in state
            .get("Choices")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            targets.extend(rule.get("Next").and_then(Json::as_str));
        }
        for catcher in state
            .get("Catch")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            targets.extend(catcher.get("Next").and_then(Json::as_str));
        }
        for target in targets {
            ensure!(
                states.contains_key(target),
                "{at}: goes to {target}, which is no state of its scope"
            );
        }
        match kind {
            "Task" => check_task(&at, name, state, top, contract)?,
            "Map" => {
                ensure!(top, "{at}: a Map inside a Map");
                ensure!(
                    state.get("Resource").is_none() && state.get("ItemProcessor").is_some(),
                    "{at}: a Map needs an ItemProcessor"
                );
                check_catch(&at, state)?;
                let processor = state.get("ItemProcessor").context("checked above")?;
                check_scope(file, processor, false, contract)?;
            }
            "Pass" | "Choice" | "Succeed" | "Fail" => {}
            other => bail!("{at}: unexpected state type {other}"),
        }
    }
    Ok(())
}

fn check_catch(at: &str, state: &Json) -> Result<()> {
    let catchers = state
        .get("Catch")
        .and_then(Json::as_array)
        .with_context(|| format!("{at}: no Catch"))?;
    ensure!(
        catchers.iter().any(|c| {
            str_list(c.get("ErrorEquals")) == ["States.ALL"]
                && c.get("ResultPath").and_then(Json::as_str) == Some("$.failure")
                && c.get("Next").and_then(Json::as_str) == Some("ReportFailure")
        }),
        "{at}: no Catch of States.ALL into $.failure and on to ReportFailure"
    );
    Ok(())
}

fn check_task(at: &str, name: &str, state: &Json, top: bool, contract: &[Row]) -> Result<()> {
    let resource = state
        .get("Resource")
        .and_then(Json::as_str)
        .with_context(|| format!("{at}: no Resource"))?;
    let key = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .with_context(|| format!("{at}: Resource {resource:?} is not a substitution key"))?;
    let row = contract
        .iter()
        .find(|row| row.key.as_deref() == Some(key))
        .with_context(|| format!("{at}: {key} is no substitution key of docs/workflows.md"))?;
    let timeout = state
        .get("TimeoutSeconds")
        .and_then(Json::as_u64)
        .with_context(|| format!("{at}: no TimeoutSeconds"))?;
    ensure!(
        (1..900).contains(&timeout),
        "{at}: TimeoutSeconds {timeout} is not under the functions' 900 s"
    );

    let retriers = state
        .get("Retry")
        .and_then(Json::as_array)
        .with_context(|| format!("{at}: no Retry"))?;
    let retried: BTreeSet<&str> = retriers
        .iter()
        .flat_map(|r| str_list(r.get("ErrorEquals")))
        .collect();
    for error in LAMBDA_ERRORS.iter().copied().chain(["Lifeboat.Retryable"]) {
        ensure!(retried.contains(error), "{at}: {error} is not retried");
    }
    for retrier in retriers {
        ensure!(
            !str_list(retrier.get("ErrorEquals"))
                .iter()
                .any(|e| e.starts_with("States.")),
            "{at}: retries a States.* error; only transient errors are retried"
        );
    }

    let result_path = state.get("ResultPath").and_then(Json::as_str);
    if name == "ReportFailure" {
        ensure!(
            result_path == Some("$.report"),
            "{at}: ReportFailure's result belongs in $.report"
        );
        return Ok(());
    }
    ensure!(
        retried.contains("Lifeboat.RepositoryLocked"),
        "{at}: Lifeboat.RepositoryLocked is not retried"
    );
    if top {
        check_catch(at, state)?;
        let path = result_path.with_context(|| format!("{at}: no ResultPath"))?;
        ensure!(
            row.result_paths.iter().any(|p| p == path),
            "{at}: ResultPath {path} is not {:?} (docs/workflows.md)",
            row.result_paths
        );
    } else {
        // A Map iteration's result is the item's result; the Map stores them all.
        ensure!(
            result_path.is_none(),
            "{at}: a Task inside a Map keeps its plain result"
        );
    }
    Ok(())
}

#[test]
fn definitions_parse_and_follow_the_contract() -> Result<()> {
    let contract = contract()?;
    for (machine, path) in definitions()? {
        let file = path.display().to_string();
        let definition = read_json(&path)?;
        check_scope(&file, &definition, true, &contract).with_context(|| machine.clone())?;
        let states = states(&definition)?;
        let report = states
            .get("ReportFailure")
            .with_context(|| format!("{file}: no ReportFailure state"))?;
        let fail_name = report
            .get("Next")
            .and_then(Json::as_str)
            .context("ReportFailure has no Next")?;
        let fail = states
            .get(fail_name)
            .with_context(|| format!("{file}: no state {fail_name}"))?;
        ensure!(
            fail.get("Type").and_then(Json::as_str) == Some("Fail"),
            "{file}: ReportFailure goes to {fail_name}, not a Fail state"
        );
        ensure!(
            fail.get("Error").and_then(Json::as_str) == Some(&format!("Lifeboat.{fail_name}")[..])
                && fail.get("CausePath").and_then(Json::as_str) == Some("$.failure.Cause"),
            "{file}: {fail_name} must fail with Lifeboat.{fail_name} and the cause in $.failure.Cause"
        );
        let start = states
            .get("Start")
            .with_context(|| format!("{file}: no Start state"))?;
        ensure!(
            start.get("Type").and_then(Json::as_str) == Some("Pass")
                && start.get("ResultPath").and_then(Json::as_str) == Some("$.execution")
                && start
                    .pointer("/Parameters/started.$")
                    .and_then(Json::as_str)
                    == Some("$$.Execution.StartTime"),
            "{file}: the Start state must record $$.Execution.StartTime in $.execution.started"
        );
        let mut keys = BTreeSet::new();
        substitution_keys(&definition, &mut keys);
        ensure!(!keys.is_empty(), "{file}: uses no function");
    }
    Ok(())
}

// ------------------------------------------------------------- template

/// The name of a YAML tag without its `!` (`!GetAtt` -> `GetAtt`).
fn tag_name(tag: &serde_yaml::value::Tag) -> String {
    tag.to_string().trim_start_matches('!').to_string()
}

/// The resource named by a `!GetAtt X.Arn`, `!GetAtt [X, Arn]` or `{"Fn::GetAtt": ...}`.
fn get_att_arn(value: &Yaml) -> Option<String> {
    let target = match value {
        Yaml::Tagged(tagged) if tag_name(&tagged.tag) == "GetAtt" => &tagged.value,
        Yaml::Mapping(map) if map.len() == 1 => map.get("Fn::GetAtt")?,
        _ => return None,
    };
    match target {
        Yaml::String(s) => s.strip_suffix(".Arn").map(str::to_string),
        Yaml::Sequence(parts) if parts.len() == 2 && parts[1].as_str() == Some("Arn") => {
            parts[0].as_str().map(str::to_string)
        }
        _ => None,
    }
}

/// The template's resources of one type, by logical id (skipping Fn::ForEach blocks).
fn resources_of<'a>(template: &'a Yaml, kind: &str) -> Result<BTreeMap<String, &'a Yaml>> {
    let resources = template
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .context("no Resources")?;
    Ok(resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some(kind))
        .filter_map(|(id, r)| Some((id.as_str()?.to_string(), r)))
        .collect())
}

#[test]
fn substitutions_are_exactly_the_keys_each_definition_uses() -> Result<()> {
    let template = template()?;
    let functions = resources_of(&template, "AWS::Serverless::Function")?;
    let machines = resources_of(&template, "AWS::Serverless::StateMachine")?;
    let expected: BTreeSet<String> = definitions()?.into_iter().map(|(name, _)| name).collect();
    ensure!(
        machines.keys().cloned().collect::<BTreeSet<_>>() == expected,
        "state machines in the template: {:?}, expected {expected:?}",
        machines.keys()
    );
    for (machine, path) in definitions()? {
        let at = format!("template {machine}");
        let props = machines[&machine]
            .get("Properties")
            .with_context(|| format!("{at}: no Properties"))?;
        let uri = props
            .get("DefinitionUri")
            .and_then(Yaml::as_str)
            .with_context(|| format!("{at}: no DefinitionUri"))?;
        let definition_path = root().join("infra").join(uri);
        ensure!(
            definition_path.canonicalize().ok() == path.canonicalize().ok(),
            "{at}: DefinitionUri {uri} is not {}",
            path.display()
        );
        let mut used = BTreeSet::new();
        substitution_keys(&read_json(&path)?, &mut used);

        let substitutions = props
            .get("DefinitionSubstitutions")
            .and_then(Yaml::as_mapping)
            .with_context(|| format!("{at}: no DefinitionSubstitutions"))?;
        let mut given = BTreeSet::new();
        let mut invoked = BTreeSet::new();
        for (key, value) in substitutions {
            let key = key
                .as_str()
                .context("a substitution key that is not a string")?;
            let function = get_att_arn(value)
                .with_context(|| format!("{at}: {key} is not a !GetAtt <Function>.Arn"))?;
            ensure!(
                functions.contains_key(&function),
                "{at}: {key} names {function}, no AWS::Serverless::Function"
            );
            ensure!(
                key == format!("{function}Arn"),
                "{at}: {key} should be {function}Arn (docs/workflows.md)"
            );
            given.insert(key.to_string());
            invoked.insert(function);
        }
        let missing: Vec<_> = used.difference(&given).collect();
        let unused: Vec<_> = given.difference(&used).collect();
        ensure!(
            missing.is_empty() && unused.is_empty(),
            "{at}: keys used but not substituted {missing:?}, substituted but not used {unused:?}"
        );

        // The machine may invoke exactly the functions it substitutes.
        let mut allowed = BTreeSet::new();
        for policy in props
            .get("Policies")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            for statement in policy
                .get("Statement")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                let actions = statement
                    .get("Action")
                    .context("a statement without Action")?;
                let invokes = actions.as_str() == Some("lambda:InvokeFunction")
                    || actions.as_sequence().is_some_and(|a| {
                        a.iter()
                            .any(|x| x.as_str() == Some("lambda:InvokeFunction"))
                    });
                if !invokes {
                    continue;
                }
                let resources = statement
                    .get("Resource")
                    .context("a statement without Resource")?;
                let list = resources
                    .as_sequence()
                    .cloned()
                    .unwrap_or_else(|| vec![resources.clone()]);
                for resource in &list {
                    allowed.insert(get_att_arn(resource).with_context(|| format!("{at}: lambda:InvokeFunction on {resource:?}, not on a !GetAtt <Function>.Arn"))?);
                }
            }
        }
        ensure!(
            allowed == invoked,
            "{at}: may invoke {allowed:?}, but its definition uses {invoked:?}"
        );
    }
    Ok(())
}

#[test]
fn every_function_builds_its_own_binary() -> Result<()> {
    let template = template()?;
    let functions = resources_of(&template, "AWS::Serverless::Function")?;
    let contract = contract()?;
    let mut binaries = BTreeSet::new();
    for (id, function) in &functions {
        let at = format!("template {id}");
        let metadata = function
            .get("Metadata")
            .with_context(|| format!("{at}: no Metadata"))?;
        ensure!(
            metadata.get("BuildMethod").and_then(Yaml::as_str) == Some("rust-cargolambda"),
            "{at}: BuildMethod is not rust-cargolambda"
        );
        let binary = metadata
            .get("BuildProperties")
            .and_then(|p| p.get("Binary"))
            .and_then(Yaml::as_str)
            .with_context(|| format!("{at}: no BuildProperties.Binary"))?;
        let code_uri = function
            .get("Properties")
            .and_then(|p| p.get("CodeUri"))
            .and_then(Yaml::as_str)
            .with_context(|| format!("{at}: no CodeUri"))?;
        let dir = code_uri
            .strip_prefix("../functions/")
            .with_context(|| format!("{at}: CodeUri {code_uri} is not under ../functions/"))?;
        ensure!(
            !dir.is_empty() && !dir.contains('/'),
            "{at}: CodeUri {code_uri} is not one directory under functions/"
        );
        ensure!(
            binary == format!("lifeboat-{dir}"),
            "{at}: Binary {binary} is not lifeboat-{dir} (CodeUri {code_uri})"
        );
        ensure!(
            binaries.insert(binary.to_string()),
            "{at}: Binary {binary} is built by another function too"
        );
        let row = contract
            .iter()
            .find(|row| row.resource == *id)
            .with_context(|| format!("{at}: not in the functions table of docs/workflows.md"))?;
        ensure!(
            row.binary == binary,
            "{at}: Binary {binary}, but docs/workflows.md says {}",
            row.binary
        );
    }
    let documented: BTreeSet<&str> = contract.iter().map(|row| row.resource.as_str()).collect();
    let defined: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    ensure!(
        documented == defined,
        "functions in docs/workflows.md {documented:?}, in the template {defined:?}"
    );
    Ok(())
}

// --------------------------------------------------------------- events

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn every_sample_event_parses() -> Result<()> {
    let mut files = Vec::new();
    json_files(&root().join("events"), &mut files)?;
    ensure!(
        files.len() >= 20,
        "only {} sample events under events/",
        files.len()
    );
    for path in &files {
        let event = read_json(path)?;
        // SQS bodies are JSON strings of their own: the requests.
        for record in event
            .get("Records")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let body = record
                .get("body")
                .and_then(Json::as_str)
                .with_context(|| format!("{}: a record without body", path.display()))?;
            serde_json::from_str::<Json>(body)
                .with_context(|| format!("{}: a record body that is not JSON", path.display()))?;
        }
    }
    // A step event for each step function of the contract.
    for row in contract()? {
        let step = row.binary.trim_start_matches("lifeboat-");
        if step == "trigger" {
            continue;
        }
        let path = root().join("events/steps").join(format!("{step}.json"));
        ensure!(
            path.is_file(),
            "no sample event {} for {}",
            path.display(),
            row.binary
        );
    }
    Ok(())
}
