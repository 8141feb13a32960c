//! A second opinion on the state machine definitions: `infra/statemachine/backup.asl.json`,
//! `restore.asl.json` and `verify.asl.json` run in moto's Step Functions executor (moto's port of
//! LocalStack's ASL interpreter), every Task a moto Lambda function whose result the
//! test scripts.
//!
//! Start moto first: `tests/substrate/aws up && cargo test -p lifeboat-tests --test moto_sfn`.
//! moto not running is a failure that says how to start it; `LIFEBOAT_SKIP_MOTO_SFN=1`
//! skips the test.
//!
//! How: the moto-api config endpoint switches Step Functions to the executor
//! (`{"stepfunctions": {"execute_state_machine": true}}`) and Lambda to its
//! Docker-less backend (`{"lambda": {"use_docker": false}}`), whose `Invoke` returns the
//! next entry of a results queue (`/moto-api/static/lambda-simple/response`) or, when
//! the queue is empty, echoes its input. The test creates one function per step
//! (`lifeboat-<step>`), fills every `${<Step>FunctionArn}` of both definitions with
//! their ARNs, creates the state machines and runs them, checking each execution's
//! history: which states ran in which order, which function each Task called and what
//! each `ResultPath` stored.
//!
//! Scope: the config switches are global to the moto server, so the test restores them
//! when it ends (also when it fails): Lambda as it was, Step Functions to moto's
//! default (`execute_state_machine: false`; moto's config endpoint does not report the
//! Step Functions setting, so an earlier non-default value cannot be restored). Cargo
//! runs test binaries one after another, so no other test sees the switch; do not run
//! this test by hand at the same time as another test that uses Step Functions or
//! Lambda in moto. Everything lives in its own region (`REGION`), so the results queue
//! (one per account and region) and the resources do not meet other tests'.
//!
//! Gaps of moto 5.2.5 (the version `tests/substrate/aws` pins), found in its source
//! (`moto/awslambda_simple`, `moto/stepfunctions/parser`) and by running it:
//! - The scripted results cannot be a Lambda *error*. The Docker-less backend always
//!   answers as a success (no `X-Amz-Function-Error`), whatever the queued text, so no
//!   Task can fail with `Lifeboat.Failed` or any other `Lifeboat.*` name, and no `Retry`
//!   of the definitions can be exercised (Retry on `Lifeboat.Retryable`,
//!   `Lifeboat.RepositoryLocked`). The one function error it can produce: moto's Invoke
//!   turns a result larger than 6 MB into an unhandled error `Function.ResponseSizeTooLarge`
//!   (payload `{"errorMessage": ..., "errorType": "Function.ResponseSizeTooLarge"}`),
//!   which the executor handles exactly as it would `Lifeboat.Failed` (error name from
//!   the payload's `errorType`, cause = the payload). The failure runs below script that
//!   instead: it matches no Retry, so it goes straight to the `States.ALL` Catch, which
//!   is what `Lifeboat.Failed` does too.
//! - The executor's own mock responses (Step Functions Local's mock config, with
//!   `Throw: {Error, Cause}`) are present in moto's code but unreachable:
//!   `load_mock_test_case_for` never loads a file. Running functions in Docker (real
//!   error types) needs a Docker daemon and Lambda images, which the substrate does not
//!   have.
//! - The queue is per account and region, not per function, and the Docker-less backend
//!   does not check that the invoked function exists; so results are consumed in
//!   invocation order (the test scripts a whole run at a time) and the check that each
//!   Task called the right function is made on the history (`LambdaFunctionScheduled`).
//! - `$$.Execution.StartTime` is a Python `datetime`, not an ISO 8601 string, inside
//!   the executor. It reaches the functions and the history as an ISO string (with
//!   `+00:00` and microseconds, not AWS's `Z`), but the execution output keeps the
//!   object, so `DescribeExecution` of a SUCCEEDED execution of these definitions (the
//!   `Start` state stores it under `$.execution.started`) fails with HTTP 500. The test
//!   reads the status with `ListExecutions` and the output from the history's
//!   `ExecutionSucceeded` event; `DescribeExecution` is used for failed executions only.
//! - Without a `name` in `StartExecution`, the executor's `$$.Execution.Name` is null
//!   and the execution ARN ends in `:None`; the test always names its executions.
//!
//! Plain HTTP to moto (std::net), not the AWS SDKs: the moto-api endpoints, IAM and
//! Lambda have no SDK in the workspace, and one small client for all four APIs keeps
//! this test from adding a dependency (and a Cargo.lock change) to the tests crate.
//! moto does not check signatures: a SigV4-shaped `Authorization` header names the
//! service and region it routes to.

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The region every resource of this test lives in, which no other test uses.
const REGION: &str = "eu-north-1";

/// The steps of docs/workflows.md that a definition's Task calls (all but `trigger`).
/// The function is `lifeboat-<step>`; its substitution key is CamelCase(step) + `FunctionArn`.
const STEPS: [&str; 14] = [
    "prepare",
    "export-state",
    "snapshot-volumes",
    "copy-volume",
    "commit",
    "verify",
    "apply-lock",
    "replicate",
    "verify-replica",
    "report",
    "resolve",
    "restore-state",
    "restore-volumes",
    "check-readiness",
];

/// A result larger than moto's 6 MB response limit: moto's Invoke answers it with the
/// function error `Function.ResponseSizeTooLarge`, the only error it can be scripted to
/// give (see the top of this file).
const OVERSIZED_LEN: usize = 6_000_001;
const OVERSIZED_ERROR: &str = "Function.ResponseSizeTooLarge";

/// How long one execution may take; they take well under a second.
const EXECUTION_TIMEOUT: Duration = Duration::from_secs(60);

fn substitution_key(step: &str) -> String {
    let camel: String = step
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!("{camel}FunctionArn")
}

fn definition_path(file: &str) -> PathBuf {
    lifeboat_tests::repo_root()
        .join("infra")
        .join("statemachine")
        .join(file)
}

fn read_definition(file: &str) -> Result<String> {
    let path = definition_path(file);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Every `${Key}` a definition uses.
fn keys_used(definition: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find('}') {
            keys.insert(rest[..end].to_string());
            rest = &rest[end + 1..];
        }
    }
    keys
}

/// The definition with every `${Key}` replaced; a key without a value is an error.
fn substitute(definition: &str, values: &BTreeMap<String, String>) -> Result<String> {
    let mut out = definition.to_string();
    for key in keys_used(definition) {
        let value = values
            .get(&key)
            .with_context(|| format!("no function for the substitution key {key}"))?;
        out = out.replace(&format!("${{{key}}}"), value);
    }
    ensure!(!out.contains("${"), "a substitution is left: {out}");
    Ok(out)
}

#[test]
fn every_substitution_key_names_a_step() -> Result<()> {
    assert_eq!(substitution_key("prepare"), "PrepareFunctionArn");
    assert_eq!(
        substitution_key("verify-replica"),
        "VerifyReplicaFunctionArn"
    );
    let known: BTreeSet<String> = STEPS.iter().map(|s| substitution_key(s)).collect();
    for file in ["backup.asl.json", "restore.asl.json", "verify.asl.json"] {
        let used = keys_used(&read_definition(file)?);
        ensure!(!used.is_empty(), "{file} uses no substitution key");
        let unknown: Vec<&String> = used.difference(&known).collect();
        ensure!(unknown.is_empty(), "{file} uses unknown keys {unknown:?}");
    }
    Ok(())
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut short: String = text.chars().take(2000).collect();
        if short.len() < text.len() {
            short.push_str("...");
        }
        short
    }

    fn json(&self) -> Result<Json> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON: {}", self.text()))
    }
}

/// The moto server of `target/substrate/aws.env`, spoken to in plain HTTP.
#[derive(Debug)]
struct Moto {
    /// `host:port`
    addr: String,
    access_key: String,
}

impl Moto {
    fn from_env() -> Result<Moto> {
        // Fails with how to start moto when it is not running.
        let env = lifeboat_tests::aws_env();
        let value = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("{key} is not in target/substrate/aws.env"))
        };
        let endpoint = value("AWS_ENDPOINT_URL")?;
        let addr = endpoint
            .strip_prefix("http://")
            .with_context(|| format!("AWS_ENDPOINT_URL {endpoint} is not http://host:port"))?
            .trim_end_matches('/')
            .to_string();
        Ok(Moto {
            addr,
            access_key: value("AWS_ACCESS_KEY_ID")?,
        })
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Answer> {
        let what = format!("{method} http://{}{path}", self.addr);
        let mut stream = TcpStream::connect(&self.addr).with_context(|| {
            format!(
                "connecting to moto at {} (is it running? tests/substrate/aws up)",
                self.addr
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .with_context(|| format!("sending {what}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .with_context(|| format!("reading the answer to {what}"))?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .with_context(|| format!("no HTTP header in the answer to {what}"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in the answer to {what}: {head}"))?;
        let mut body = raw[split + 4..].to_vec();
        let chunked = head.lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("transfer-encoding:") && line.contains("chunked")
        });
        if chunked {
            body = dechunk(&body).with_context(|| format!("the answer to {what}"))?;
        }
        Ok(Answer { status, body })
    }

    /// A SigV4-shaped header: moto routes on its credential scope and does not check it.
    fn authorization(&self, region: &str, service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0",
            self.access_key
        )
    }

    /// POST to a moto-api endpoint; it answers 201.
    fn moto_api(&self, path: &str, body: &Json) -> Result<Answer> {
        let answer = self.request(
            "POST",
            path,
            &[("Content-Type", "application/json".to_string())],
            body.to_string().as_bytes(),
        )?;
        ensure!(
            answer.status == 201,
            "moto-api {path}: HTTP {} {}",
            answer.status,
            answer.text()
        );
        Ok(answer)
    }

    fn config(&self) -> Result<Json> {
        let answer = self.request("GET", "/moto-api/config", &[], b"")?;
        ensure!(
            answer.status == 201 || answer.status == 200,
            "moto-api config: HTTP {} {}",
            answer.status,
            answer.text()
        );
        answer.json()
    }

    /// Queue Lambda results in this test's region; each Invoke takes the first.
    fn script(&self, results: &[String]) -> Result<()> {
        self.moto_api(
            "/moto-api/static/lambda-simple/response",
            &json!({ "results": results, "region": REGION }),
        )
        .map(|_| ())
    }

    /// Empty this region's results queue (left over by an earlier run that failed
    /// half-way): invoke until the function echoes its input, which it does only when
    /// the queue is empty.
    fn drain(&self, function: &str) -> Result<()> {
        let probe = format!("\"lifeboat-moto-sfn-drain-{}\"", std::process::id());
        for _ in 0..10_000 {
            let answer = self.request(
                "POST",
                &format!("/2015-03-31/functions/{function}/invocations"),
                &[
                    ("Content-Type", "application/json".to_string()),
                    ("Authorization", self.authorization(REGION, "lambda")),
                ],
                probe.as_bytes(),
            )?;
            ensure!(
                answer.status == 200,
                "invoking {function}: HTTP {} {}",
                answer.status,
                answer.text()
            );
            if answer.body == probe.as_bytes() {
                return Ok(());
            }
        }
        bail!("the Lambda results queue of {REGION} does not empty")
    }

    fn iam(&self, form: &[(&str, &str)]) -> Result<Answer> {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect();
        self.request(
            "POST",
            "/",
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("Authorization", self.authorization("us-east-1", "iam")),
            ],
            body.join("&").as_bytes(),
        )
    }

    /// The role the functions name (moto's Lambda wants it to exist), made if missing.
    fn role(&self, name: &str) -> Result<String> {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "lambda.amazonaws.com" },
                "Action": "sts:AssumeRole"
            }]
        })
        .to_string();
        let created = self.iam(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &policy),
        ])?;
        let answer = if created.status == 200 {
            created
        } else if created.text().contains("EntityAlreadyExists") {
            self.iam(&[
                ("Action", "GetRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
            ])?
        } else {
            bail!(
                "IAM CreateRole {name}: HTTP {} {}",
                created.status,
                created.text()
            )
        };
        let text = answer.text();
        let arn = text
            .split("<Arn>")
            .nth(1)
            .and_then(|rest| rest.split("</Arn>").next())
            .with_context(|| format!("no role ARN in {text}"))?;
        Ok(arn.to_string())
    }

    /// The function `name` in this test's region (made if missing); its ARN.
    fn function(&self, name: &str, role: &str) -> Result<String> {
        let lambda_headers = [
            ("Content-Type", "application/json".to_string()),
            ("Authorization", self.authorization(REGION, "lambda")),
        ];
        // An empty zip archive: the Docker-less backend never runs the code.
        let spec = json!({
            "FunctionName": name,
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Role": role,
            "Code": { "ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" },
            "Timeout": 900,
        });
        let created = self.request(
            "POST",
            "/2015-03-31/functions",
            &lambda_headers,
            spec.to_string().as_bytes(),
        )?;
        let configuration = match created.status {
            201 => created.json()?,
            409 => {
                let got = self.request(
                    "GET",
                    &format!("/2015-03-31/functions/{name}"),
                    &lambda_headers,
                    b"",
                )?;
                ensure!(
                    got.status == 200,
                    "Lambda GetFunction {name}: HTTP {} {}",
                    got.status,
                    got.text()
                );
                got.json()?["Configuration"].clone()
            }
            status => bail!(
                "Lambda CreateFunction {name}: HTTP {status} {}",
                created.text()
            ),
        };
        configuration["FunctionArn"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no FunctionArn in {configuration}"))
    }

    /// One Step Functions action (JSON 1.0 protocol).
    fn sfn(&self, action: &str, body: &Json) -> Result<Json> {
        let answer = self.request(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.0".to_string()),
                ("X-Amz-Target", format!("AWSStepFunctions.{action}")),
                ("Authorization", self.authorization(REGION, "states")),
            ],
            body.to_string().as_bytes(),
        )?;
        ensure!(
            answer.status == 200,
            "Step Functions {action}: HTTP {} {}",
            answer.status,
            answer.text()
        );
        answer.json()
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk without its size line")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(body.len() >= size, "a chunk shorter than its size");
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

/// While alive, moto runs state machines and Lambda without Docker; on drop (also when
/// the test fails) both settings go back (see the top of this file).
#[derive(Debug)]
struct ExecutorMode<'a> {
    moto: &'a Moto,
    lambda_before: Json,
}

impl<'a> ExecutorMode<'a> {
    fn enter(moto: &'a Moto) -> Result<ExecutorMode<'a>> {
        let before = moto.config()?;
        let lambda_before = before
            .get("lambda")
            .cloned()
            .unwrap_or_else(|| json!({ "use_docker": true }));
        let mode = ExecutorMode {
            moto,
            lambda_before,
        };
        moto.moto_api(
            "/moto-api/config",
            &json!({
                "lambda": { "use_docker": false },
                "stepfunctions": { "execute_state_machine": true },
            }),
        )?;
        Ok(mode)
    }
}

impl Drop for ExecutorMode<'_> {
    fn drop(&mut self) {
        let restore = json!({
            "lambda": self.lambda_before,
            "stepfunctions": { "execute_state_machine": false },
        });
        if let Err(e) = self.moto.moto_api("/moto-api/config", &restore) {
            eprintln!("moto_sfn: could not restore moto's config {restore}: {e:#}");
        }
    }
}

/// The functions and state machines of one test run.
#[derive(Debug)]
struct Fixture<'a> {
    moto: &'a Moto,
    /// substitution key -> function ARN
    arns: BTreeMap<String, String>,
    backup: String,
    restore: String,
    verify: String,
    run: String,
}

impl<'a> Fixture<'a> {
    fn new(moto: &'a Moto) -> Result<Fixture<'a>> {
        let run = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let role = moto.role("lifeboat-moto-sfn")?;
        let mut arns = BTreeMap::new();
        for step in STEPS {
            let arn = moto.function(&format!("lifeboat-{step}"), &role)?;
            arns.insert(substitution_key(step), arn);
        }
        let mut machines = Vec::new();
        for (tag, file) in [
            ("backup", "backup.asl.json"),
            ("restore", "restore.asl.json"),
            ("verify", "verify.asl.json"),
        ] {
            let definition = substitute(&read_definition(file)?, &arns)?;
            let created = moto
                .sfn(
                    "CreateStateMachine",
                    &json!({
                        "name": format!("lifeboat-{tag}-{run}"),
                        "definition": definition,
                        "roleArn": role,
                        "type": "STANDARD",
                    }),
                )
                .with_context(|| format!("creating the state machine of {file}"))?;
            let arn = created["stateMachineArn"]
                .as_str()
                .with_context(|| format!("no stateMachineArn in {created}"))?;
            machines.push(arn.to_string());
        }
        let [backup, restore, verify] = <[String; 3]>::try_from(machines)
            .map_err(|m| anyhow::anyhow!("three state machines expected, got {m:?}"))?;
        Ok(Fixture {
            moto,
            arns,
            backup,
            restore,
            verify,
            run,
        })
    }

    fn arn(&self, step: &str) -> Result<&str> {
        self.arns
            .get(&substitution_key(step))
            .map(String::as_str)
            .with_context(|| format!("no function for {step}"))
    }

    /// Queue `results`, run `machine` on `input` to its end and return its status and
    /// history. The queue is emptied first, so each run gets exactly its own results.
    fn run(
        &self,
        machine: &str,
        label: &str,
        input: &Json,
        results: &[String],
    ) -> Result<Execution> {
        self.moto.drain("lifeboat-report")?;
        self.moto.script(results)?;
        let name = format!("{label}-{}", self.run);
        let started = self.moto.sfn(
            "StartExecution",
            &json!({ "stateMachineArn": machine, "name": name, "input": input.to_string() }),
        )?;
        let arn = started["executionArn"]
            .as_str()
            .with_context(|| format!("no executionArn in {started}"))?
            .to_string();
        let deadline = Instant::now() + EXECUTION_TIMEOUT;
        let status = loop {
            let status = self.status(machine, &arn)?;
            if status != "RUNNING" {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "{name} still RUNNING after {EXECUTION_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let events = self.history(&arn)?;
        // Whatever the run left in the queue would be a scripting mistake; drained
        // here so that it cannot leak into the next run.
        self.moto.drain("lifeboat-report")?;
        Ok(Execution {
            arn,
            name,
            status,
            events,
        })
    }

    /// The status from ListExecutions (DescribeExecution fails on these definitions'
    /// successful executions, see the top of this file).
    fn status(&self, machine: &str, execution: &str) -> Result<String> {
        let mut token: Option<String> = None;
        loop {
            let mut request = json!({ "stateMachineArn": machine, "maxResults": 100 });
            if let Some(t) = &token {
                request["nextToken"] = json!(t);
            }
            let page = self.moto.sfn("ListExecutions", &request)?;
            let found = page["executions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["executionArn"] == execution);
            if let Some(e) = found {
                return e["status"]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("no status in {e}"));
            }
            match page["nextToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => bail!("{execution} is not listed for {machine}"),
            }
        }
    }

    fn history(&self, execution: &str) -> Result<Vec<Json>> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = json!({ "executionArn": execution, "maxResults": 1000 });
            if let Some(t) = &token {
                request["nextToken"] = json!(t);
            }
            let page = self.moto.sfn("GetExecutionHistory", &request)?;
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            match page["nextToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(events),
            }
        }
    }
}

/// One finished execution.
#[derive(Debug)]
struct Execution {
    arn: String,
    name: String,
    status: String,
    events: Vec<Json>,
}

impl Execution {
    fn dump(&self) -> String {
        self.events
            .iter()
            .map(|e| {
                let mut line = format!("{} {}", e["id"], e["type"]);
                if let Some(name) = e["stateEnteredEventDetails"]["name"].as_str() {
                    line.push_str(&format!(" {name}"));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The states entered, in order, as `(event type, state name)`.
    fn entered(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| {
                let name = e["stateEnteredEventDetails"]["name"].as_str()?;
                Some((e["type"].as_str()?.to_string(), name.to_string()))
            })
            .collect()
    }

    fn tasks(&self) -> Vec<String> {
        self.entered()
            .into_iter()
            .filter(|(kind, _)| kind == "TaskStateEntered")
            .map(|(_, name)| name)
            .collect()
    }

    /// For each Lambda call, the Task that made it, the function and the input it got.
    fn calls(&self) -> Result<Vec<(String, String, Json)>> {
        let mut task = String::new();
        let mut calls = Vec::new();
        for e in &self.events {
            match e["type"].as_str() {
                Some("TaskStateEntered") => {
                    task = e["stateEnteredEventDetails"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                Some("LambdaFunctionScheduled") => {
                    let details = &e["lambdaFunctionScheduledEventDetails"];
                    let input = details["input"].as_str().unwrap_or("null");
                    calls.push((
                        task.clone(),
                        details["resource"].as_str().unwrap_or_default().to_string(),
                        serde_json::from_str(input)
                            .with_context(|| format!("the input of {task}: {input}"))?,
                    ));
                }
                _ => {}
            }
        }
        Ok(calls)
    }

    fn last_event(&self, kind: &str) -> Result<&Json> {
        self.events
            .iter()
            .rev()
            .find(|e| e["type"] == kind)
            .with_context(|| format!("no {kind} event in\n{}", self.dump()))
    }

    /// The output of a SUCCEEDED execution, from its history.
    fn output(&self) -> Result<Json> {
        let event = self.last_event("ExecutionSucceeded")?;
        let text = event["executionSucceededEventDetails"]["output"]
            .as_str()
            .with_context(|| format!("no output in {event}"))?;
        serde_json::from_str(text).with_context(|| format!("the output {text}"))
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn results(values: &[&Json]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn backup_input() -> Json {
    json!({
        "version": 1,
        "action": "backup",
        "cluster": "shop-prod",
        "scope": { "namespaces": ["shop"] },
        "tags": { "reason": "pre-deploy" },
        "idempotency_key": "deploy-4711",
        "requested_by": "ci"
    })
}

/// Each Task called the function of its step, in this order.
fn check_calls(execution: &Execution, fixture: &Fixture, expected: &[(&str, &str)]) -> Result<()> {
    let calls = execution.calls()?;
    let got: Vec<(String, String)> = calls
        .iter()
        .map(|(task, function, _)| (task.clone(), function.clone()))
        .collect();
    let mut want = Vec::new();
    for (task, step) in expected {
        want.push((task.to_string(), fixture.arn(step)?.to_string()));
    }
    ensure!(
        got == want,
        "{}: Lambda calls {got:#?}, expected {want:#?}",
        execution.name
    );
    Ok(())
}

/// The `Start` Pass state's `$.execution`, as every function sees it.
fn check_execution_context(execution: &Execution, output: &Json) -> Result<()> {
    let context = &output["execution"];
    ensure!(
        context["id"] == execution.arn.as_str() && context["name"] == execution.name.as_str(),
        "{}: $.execution is {context}",
        execution.name
    );
    ensure!(
        context["started"].as_str().is_some_and(|s| !s.is_empty()),
        "{}: $.execution.started is {}",
        execution.name,
        context["started"]
    );
    Ok(())
}

fn backup_succeeds_without_volumes(fixture: &Fixture) -> Result<()> {
    let stored = [
        (
            "plan",
            json!({ "cluster": "shop-prod", "scope": { "namespaces": ["shop"] } }),
        ),
        ("export", json!({ "tree": "tree-1", "objects": 42 })),
        ("volumes", json!({ "count": 0, "items": [] })),
        ("commit", json!({ "snapshot": "snap-1" })),
        ("verify", json!({ "ok": true, "damage": [] })),
        ("lock", json!({ "until": "2027-01-01T00:00:00Z" })),
        ("replica", json!({ "copied": 17 })),
        ("replica_verify", json!({ "ok": true })),
        ("report", json!({ "sent": true })),
    ];
    let scripted: Vec<&Json> = stored.iter().map(|(_, v)| v).collect();
    let execution = fixture.run(
        &fixture.backup,
        "backup-ok",
        &backup_input(),
        &results(&scripted),
    )?;
    ensure!(
        execution.status == "SUCCEEDED",
        "backup-ok ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    let tasks = [
        "Prepare",
        "ExportState",
        "SnapshotVolumes",
        "Commit",
        "Verify",
        "ApplyLock",
        "Replicate",
        "VerifyReplica",
        "Report",
    ];
    ensure!(
        execution.tasks() == strings(&tasks),
        "backup-ok ran the Tasks {:?}",
        execution.tasks()
    );
    let entered = execution.entered();
    ensure!(
        entered
            .iter()
            .any(|(kind, name)| kind == "ChoiceStateEntered" && name == "AnyVolumes")
            && !entered
                .iter()
                .any(|(_, name)| name == "CopyVolumes" || name == "CopyVolume"),
        "with volumes.count 0 the Choice must skip the Map:\n{}",
        execution.dump()
    );
    ensure!(
        entered.last()
            == Some(&(
                "SucceedStateEntered".to_string(),
                "BackupSucceeded".to_string()
            )),
        "backup-ok did not end in BackupSucceeded:\n{}",
        execution.dump()
    );
    check_calls(
        &execution,
        fixture,
        &[
            ("Prepare", "prepare"),
            ("ExportState", "export-state"),
            ("SnapshotVolumes", "snapshot-volumes"),
            ("Commit", "commit"),
            ("Verify", "verify"),
            ("ApplyLock", "apply-lock"),
            ("Replicate", "replicate"),
            ("VerifyReplica", "verify-replica"),
            ("Report", "report"),
        ],
    )?;
    // Every Task gets the whole state: the last one sees all earlier results.
    let calls = execution.calls()?;
    let report_input = &calls.last().context("no Lambda call")?.2;
    for (field, value) in &stored[..stored.len() - 1] {
        ensure!(
            &report_input[*field] == value,
            "Report got ${field} = {}, expected {value}",
            report_input[*field]
        );
    }
    let output = execution.output()?;
    for (field, value) in &stored {
        ensure!(
            &output[*field] == value,
            "backup-ok stored ${field} = {}, expected {value}",
            output[*field]
        );
    }
    for (field, value) in backup_input().as_object().into_iter().flatten() {
        ensure!(
            &output[field] == value,
            "the request field {field} was not kept"
        );
    }
    ensure!(
        output.get("failure").is_none() && output.get("copies").is_none(),
        "backup-ok output has a failure or copies: {output}"
    );
    check_execution_context(&execution, &output)
}

fn backup_copies_volumes_in_the_map(fixture: &Fixture) -> Result<()> {
    let volumes = json!({
        "count": 2,
        "items": [{ "claim": "shop/data-0" }, { "claim": "shop/data-1" }]
    });
    // The iterations may run at once and take queue entries in either order, so both
    // copies get the same result.
    let copy = json!({ "copied_bytes": 1024 });
    let scripted = [
        &json!({ "cluster": "shop-prod" }),
        &json!({ "tree": "tree-2" }),
        &volumes,
        &copy,
        &copy,
        &json!({ "snapshot": "snap-2" }),
        &json!({ "ok": true }),
        &json!({ "until": "2027-01-01T00:00:00Z" }),
        &json!({ "copied": 3 }),
        &json!({ "ok": true }),
        &json!({ "sent": true }),
    ];
    let execution = fixture.run(
        &fixture.backup,
        "backup-volumes",
        &backup_input(),
        &results(&scripted),
    )?;
    ensure!(
        execution.status == "SUCCEEDED",
        "backup-volumes ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    let tasks = [
        "Prepare",
        "ExportState",
        "SnapshotVolumes",
        "CopyVolume",
        "CopyVolume",
        "Commit",
        "Verify",
        "ApplyLock",
        "Replicate",
        "VerifyReplica",
        "Report",
    ];
    ensure!(
        execution.tasks() == strings(&tasks),
        "backup-volumes ran the Tasks {:?}",
        execution.tasks()
    );
    ensure!(
        execution
            .entered()
            .iter()
            .any(|(kind, name)| kind == "MapStateEntered" && name == "CopyVolumes"),
        "backup-volumes did not enter the Map:\n{}",
        execution.dump()
    );
    // Each iteration gets its item, its index and the context the ItemSelector names.
    let copies: Vec<Json> = execution
        .calls()?
        .into_iter()
        .filter(|(task, _, _)| task == "CopyVolume")
        .map(|(_, function, input)| (function, input))
        .map(|(function, input)| {
            ensure!(
                function == fixture.arn("copy-volume")?,
                "CopyVolume called {function}"
            );
            Ok(input)
        })
        .collect::<Result<_>>()?;
    let mut indexes: Vec<i64> = copies.iter().filter_map(|i| i["index"].as_i64()).collect();
    indexes.sort_unstable();
    ensure!(indexes == [0, 1], "CopyVolume inputs {copies:#?}");
    for input in &copies {
        let index = input["index"].as_u64().unwrap_or(u64::MAX) as usize;
        ensure!(
            input["volume"] == volumes["items"][index]
                && input["plan"] == json!({ "cluster": "shop-prod" })
                && input["export"] == json!({ "tree": "tree-2" })
                && input["execution"]["name"] == execution.name.as_str()
                && input.get("volumes").is_none(),
            "CopyVolume input {input}"
        );
    }
    let output = execution.output()?;
    ensure!(
        output["copies"] == json!([copy, copy]),
        "backup-volumes stored $.copies = {}",
        output["copies"]
    );
    Ok(())
}

fn backup_with_a_failed_copy_goes_on_without_it(fixture: &Fixture) -> Result<()> {
    let volumes = json!({
        "count": 1,
        "items": [{ "volume": "shop/data-0", "claim": "shop/data-0" }]
    });
    let mut scripted = results(&[
        &json!({ "cluster": "shop-prod" }),
        &json!({ "tree": "tree-4" }),
        &volumes,
    ]);
    scripted.push(oversized()); // CopyVolume fails
    scripted.extend(results(&[
        &json!({ "snapshot": "snap-4", "volumes_failed": ["shop/data-0: ..."] }),
        &json!({ "ok": true }),
        &json!({ "until": "2027-01-01T00:00:00Z" }),
        &json!({ "copied": 1 }),
        &json!({ "ok": true }),
        &json!({ "sent": true }),
    ]));
    let execution = fixture.run(
        &fixture.backup,
        "backup-partial",
        &backup_input(),
        &scripted,
    )?;
    ensure!(
        execution.status == "SUCCEEDED",
        "backup-partial ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    let tasks = [
        "Prepare",
        "ExportState",
        "SnapshotVolumes",
        "CopyVolume",
        "Commit",
        "Verify",
        "ApplyLock",
        "Replicate",
        "VerifyReplica",
        "Report",
    ];
    ensure!(
        execution.tasks() == strings(&tasks),
        "backup-partial ran the Tasks {:?}",
        execution.tasks()
    );
    // The failed copy's result is the CopyFailed state's: the volume and the
    // Catch's {Error, Cause}; Commit gets it under $.copies.
    let calls = execution.calls()?;
    let (_, _, commit_input) = calls
        .iter()
        .find(|(task, _, _)| task == "Commit")
        .context("Commit was not called")?;
    let copies = &commit_input["copies"];
    ensure!(
        copies[0]["volume"] == "shop/data-0"
            && copies[0]["failed"]["Error"] == OVERSIZED_ERROR
            && copies[0]["failed"]["Cause"]
                .as_str()
                .is_some_and(|c| c.contains(OVERSIZED_ERROR))
            && copies.as_array().map(Vec::len) == Some(1),
        "backup-partial: Commit got $.copies = {copies}"
    );
    Ok(())
}

fn oversized() -> String {
    "x".repeat(OVERSIZED_LEN)
}

/// The checks of a backup that failed in `failed_task`: the Catch sent it to
/// ReportFailure and it ended in BackupFailed with the failed step's cause.
fn check_backup_failure(
    fixture: &Fixture,
    execution: &Execution,
    tasks: &[&str],
    failed_task: &str,
) -> Result<Json> {
    check_failure(fixture, execution, tasks, failed_task, "BackupFailed")
}

/// The checks of an execution that failed in `failed_task`: the Catch sent
/// it to ReportFailure and it ended in the Fail state `fail_state`, whose
/// error is `Lifeboat.<fail_state>`, with the failed step's cause.
fn check_failure(
    fixture: &Fixture,
    execution: &Execution,
    tasks: &[&str],
    failed_task: &str,
    fail_state: &str,
) -> Result<Json> {
    let name = &execution.name;
    ensure!(
        execution.status == "FAILED",
        "{name} ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    ensure!(
        execution.tasks() == strings(tasks),
        "{name} ran the Tasks {:?}",
        execution.tasks()
    );
    // The first Lambda failure is the failed step's (ReportFailure may fail after it).
    let failed = execution
        .events
        .iter()
        .find(|e| e["type"] == "LambdaFunctionFailed")
        .with_context(|| format!("{name}: no LambdaFunctionFailed in\n{}", execution.dump()))?;
    let lambda_error = &failed["lambdaFunctionFailedEventDetails"];
    ensure!(
        lambda_error["error"] == OVERSIZED_ERROR,
        "{name}: the Lambda failed with {lambda_error}"
    );
    let cause = lambda_error["cause"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        cause.contains(OVERSIZED_ERROR),
        "{name}: the Lambda's cause {cause}"
    );
    // ReportFailure called the report function with the failure under $.failure.
    let calls = execution.calls()?;
    let (_, function, input) = calls
        .iter()
        .find(|(task, _, _)| task == "ReportFailure")
        .with_context(|| format!("{name} did not call ReportFailure"))?;
    ensure!(
        function == fixture.arn("report")?,
        "ReportFailure called {function}"
    );
    ensure!(
        input["failure"] == json!({ "Error": OVERSIZED_ERROR, "Cause": cause }),
        "{name}: ReportFailure got $.failure = {}",
        input["failure"]
    );
    ensure!(
        calls.iter().any(|(task, _, _)| task == failed_task),
        "{name}: {failed_task} never called its function"
    );
    let entered = execution.entered();
    let fail = entered.last().context("no state entered")?;
    ensure!(
        fail == &("FailStateEntered".to_string(), fail_state.to_string()),
        "{name} did not end in {fail_state}:\n{}",
        execution.dump()
    );
    // The execution's error is the one name for every failure, its cause the step's.
    let failed = execution.last_event("ExecutionFailed")?;
    let details = &failed["executionFailedEventDetails"];
    ensure!(
        details["error"] == format!("Lifeboat.{fail_state}") && details["cause"] == cause.as_str(),
        "{name}: ExecutionFailed {details}"
    );
    let described = fixture.moto.sfn(
        "DescribeExecution",
        &json!({ "executionArn": execution.arn }),
    )?;
    ensure!(
        described["status"] == "FAILED"
            && described["error"] == format!("Lifeboat.{fail_state}")
            && described["cause"] == cause.as_str(),
        "{name}: DescribeExecution {described}"
    );
    // The state the Fail state got, for the caller's further checks.
    let last_entered = execution
        .events
        .iter()
        .rev()
        .find(|e| e["type"] == "FailStateEntered")
        .context("no FailStateEntered")?;
    let state = last_entered["stateEnteredEventDetails"]["input"]
        .as_str()
        .with_context(|| format!("no input to {fail_state}"))?;
    serde_json::from_str(state).with_context(|| format!("the input to {fail_state}: {state}"))
}

fn backup_failure_goes_through_report_failure(fixture: &Fixture) -> Result<()> {
    let recorded = json!({ "recorded": true });
    let mut scripted = results(&[
        &json!({ "cluster": "shop-prod" }),
        &json!({ "tree": "tree-3" }),
        &json!({ "count": 0, "items": [] }),
        &json!({ "snapshot": "snap-3" }),
    ]);
    scripted.push(oversized()); // Verify fails
    scripted.push(recorded.to_string()); // ReportFailure
    let execution = fixture.run(&fixture.backup, "backup-fails", &backup_input(), &scripted)?;
    let tasks = [
        "Prepare",
        "ExportState",
        "SnapshotVolumes",
        "Commit",
        "Verify",
        "ReportFailure",
    ];
    let state = check_backup_failure(fixture, &execution, &tasks, "Verify")?;
    check_calls(
        &execution,
        fixture,
        &[
            ("Prepare", "prepare"),
            ("ExportState", "export-state"),
            ("SnapshotVolumes", "snapshot-volumes"),
            ("Commit", "commit"),
            ("Verify", "verify"),
            ("ReportFailure", "report"),
        ],
    )?;
    ensure!(
        state["report"] == recorded
            && state.get("verify").is_none()
            && state.get("report_failure").is_none()
            && state["commit"] == json!({ "snapshot": "snap-3" }),
        "backup-fails: the state BackupFailed got {state}"
    );
    Ok(())
}

fn failed_report_failure_still_ends_in_backup_failed(fixture: &Fixture) -> Result<()> {
    // Prepare fails, then ReportFailure fails too.
    let scripted = [oversized(), oversized()];
    let execution = fixture.run(
        &fixture.backup,
        "backup-report-fails",
        &backup_input(),
        &scripted,
    )?;
    let state = check_backup_failure(
        fixture,
        &execution,
        &["Prepare", "ReportFailure"],
        "Prepare",
    )?;
    ensure!(
        state["report_failure"]["Error"] == OVERSIZED_ERROR && state.get("report").is_none(),
        "backup-report-fails: the state BackupFailed got {state}"
    );
    Ok(())
}

fn restore_succeeds(fixture: &Fixture) -> Result<()> {
    let input = json!({
        "version": 1,
        "action": "restore",
        "cluster": "shop-dr",
        "source_cluster": "shop-prod",
        "snapshot": "latest",
        "idempotency_key": "failover-2026-11-27",
        "requested_by": "runbook"
    });
    let stored = [
        (
            "resolved",
            json!({ "snapshot": "snap-1", "target": "shop-dr" }),
        ),
        ("foundation", json!({ "phase": "foundation", "applied": 9 })),
        ("restored_volumes", json!({ "count": 2 })),
        ("workloads", json!({ "phase": "workloads", "applied": 31 })),
        ("readiness", json!({ "ready": true, "not_ready": [] })),
        ("report", json!({ "sent": true })),
    ];
    let scripted: Vec<&Json> = stored.iter().map(|(_, v)| v).collect();
    let execution = fixture.run(&fixture.restore, "restore-ok", &input, &results(&scripted))?;
    ensure!(
        execution.status == "SUCCEEDED",
        "restore-ok ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    let tasks = [
        "Resolve",
        "RestoreFoundation",
        "RestoreVolumes",
        "RestoreWorkloads",
        "CheckReadiness",
        "Report",
    ];
    ensure!(
        execution.tasks() == strings(&tasks),
        "restore-ok ran the Tasks {:?}",
        execution.tasks()
    );
    ensure!(
        execution.entered().last()
            == Some(&(
                "SucceedStateEntered".to_string(),
                "RestoreSucceeded".to_string()
            )),
        "restore-ok did not end in RestoreSucceeded:\n{}",
        execution.dump()
    );
    check_calls(
        &execution,
        fixture,
        &[
            ("Resolve", "resolve"),
            ("RestoreFoundation", "restore-state"),
            ("RestoreVolumes", "restore-volumes"),
            ("RestoreWorkloads", "restore-state"),
            ("CheckReadiness", "check-readiness"),
            ("Report", "report"),
        ],
    )?;
    // restore-state picks its phase from whether $.foundation is present.
    let calls = execution.calls()?;
    let phases: Vec<bool> = calls
        .iter()
        .filter(|(task, _, _)| task.starts_with("Restore") && task != "RestoreVolumes")
        .map(|(_, _, input)| input.get("foundation").is_some())
        .collect();
    ensure!(
        phases == [false, true],
        "restore-state saw $.foundation present: {phases:?}"
    );
    let output = execution.output()?;
    for (field, value) in &stored {
        ensure!(
            &output[*field] == value,
            "restore-ok stored ${field} = {}, expected {value}",
            output[*field]
        );
    }
    check_execution_context(&execution, &output)
}

fn verify_input() -> Json {
    json!({
        "version": 1,
        "action": "verify",
        "cluster": "shop-prod",
        "snapshot": "latest",
        "idempotency_key": "weekly-verify-2026-48",
        "requested_by": "ci"
    })
}

fn verify_succeeds(fixture: &Fixture) -> Result<()> {
    let stored = [
        ("resolved", json!({ "snapshot": "snap-7" })),
        ("verify", json!({ "ok": true, "snapshot": "snap-7" })),
        (
            "replica_verify",
            json!({ "ok": true, "snapshot": "snap-7" }),
        ),
        ("report", json!({ "sent": true })),
    ];
    let scripted: Vec<&Json> = stored.iter().map(|(_, v)| v).collect();
    let execution = fixture.run(
        &fixture.verify,
        "verify-ok",
        &verify_input(),
        &results(&scripted),
    )?;
    ensure!(
        execution.status == "SUCCEEDED",
        "verify-ok ended {}:\n{}",
        execution.status,
        execution.dump()
    );
    ensure!(
        execution.tasks() == strings(&["Resolve", "Verify", "VerifyReplica", "Report"]),
        "verify-ok ran the Tasks {:?}",
        execution.tasks()
    );
    check_calls(
        &execution,
        fixture,
        &[
            ("Resolve", "resolve"),
            ("Verify", "verify"),
            ("VerifyReplica", "verify-replica"),
            ("Report", "report"),
        ],
    )?;
    let output = execution.output()?;
    for (field, value) in &stored {
        ensure!(
            &output[*field] == value,
            "verify-ok stored ${field} = {}, expected {value}",
            output[*field]
        );
    }
    check_execution_context(&execution, &output)
}

fn verify_failure_goes_through_report_failure(fixture: &Fixture) -> Result<()> {
    let recorded = json!({ "recorded": true });
    let mut scripted = results(&[
        &json!({ "snapshot": "snap-7" }),
        &json!({ "ok": true, "snapshot": "snap-7" }),
    ]);
    scripted.push(oversized()); // VerifyReplica fails
    scripted.push(recorded.to_string()); // ReportFailure
    let execution = fixture.run(&fixture.verify, "verify-fails", &verify_input(), &scripted)?;
    let tasks = ["Resolve", "Verify", "VerifyReplica", "ReportFailure"];
    let state = check_failure(fixture, &execution, &tasks, "VerifyReplica", "VerifyFailed")?;
    ensure!(
        state["report"] == recorded
            && state.get("replica_verify").is_none()
            && state["verify"] == json!({ "ok": true, "snapshot": "snap-7" }),
        "verify-fails: the state VerifyFailed got {state}"
    );
    Ok(())
}

#[test]
fn definitions_run_in_motos_step_functions_executor() -> Result<()> {
    if std::env::var("LIFEBOAT_SKIP_MOTO_SFN").as_deref() == Ok("1") {
        eprintln!("moto_sfn: skipped (LIFEBOAT_SKIP_MOTO_SFN=1)");
        return Ok(());
    }
    let moto = Moto::from_env()?;
    let _mode = ExecutorMode::enter(&moto)?;
    let fixture = Fixture::new(&moto)?;
    // One after another: the results queue is shared by every run in the region.
    backup_succeeds_without_volumes(&fixture).context("backup, no volumes")?;
    backup_copies_volumes_in_the_map(&fixture).context("backup, two volumes")?;
    backup_failure_goes_through_report_failure(&fixture).context("backup, Verify fails")?;
    backup_with_a_failed_copy_goes_on_without_it(&fixture).context("backup, a copy fails")?;
    failed_report_failure_still_ends_in_backup_failed(&fixture)
        .context("backup, Prepare and ReportFailure fail")?;
    restore_succeeds(&fixture).context("restore")?;
    verify_succeeds(&fixture).context("verify")?;
    verify_failure_goes_through_report_failure(&fixture).context("verify, VerifyReplica fails")?;
    Ok(())
}
