//! Checks on the graph of one machine: every transition names a state of the
//! same `States` object, every state is reachable from `StartAt`, and some
//! state is terminal.

use std::collections::{BTreeSet, VecDeque};

use crate::error::AslError;
use crate::model::{StateKind, StateMachine, Transition};

/// The transitions out of every state: (state, field, target).
fn edges<'m>(machine: &'m StateMachine) -> Vec<(&'m str, String, &'m str)> {
    let mut out = Vec::new();
    for (name, state) in &machine.states {
        let mut push = |field: String, target: &'m str| out.push((name.as_str(), field, target));
        let (transition, catch) = match &state.kind {
            StateKind::Pass(s) => (Some(&s.transition), None),
            StateKind::Task(s) => (Some(&s.transition), Some(&s.catch)),
            StateKind::Wait(s) => (Some(&s.transition), None),
            StateKind::Parallel(s) => (Some(&s.transition), Some(&s.catch)),
            StateKind::Map(s) => (Some(&s.transition), Some(&s.catch)),
            StateKind::Choice(s) => {
                for (i, choice) in s.choices.iter().enumerate() {
                    push(format!("Choices[{i}].Next"), &choice.next);
                }
                if let Some(default) = &s.default {
                    push("Default".to_string(), default);
                }
                (None, None)
            }
            StateKind::Succeed(_) | StateKind::Fail(_) => (None, None),
        };
        if let Some(Transition::Next(next)) = transition {
            push("Next".to_string(), next);
        }
        for (i, catcher) in catch.into_iter().flatten().enumerate() {
            push(format!("Catch[{i}].Next"), &catcher.next);
        }
    }
    out
}

fn is_terminal(kind: &StateKind) -> bool {
    match kind {
        StateKind::Succeed(_) | StateKind::Fail(_) => true,
        StateKind::Pass(s) => s.transition == Transition::End,
        StateKind::Task(s) => s.transition == Transition::End,
        StateKind::Wait(s) => s.transition == Transition::End,
        StateKind::Parallel(s) => s.transition == Transition::End,
        StateKind::Map(s) => s.transition == Transition::End,
        StateKind::Choice(_) => false,
    }
}

pub(crate) fn transitions(machine: &StateMachine, location: &str) -> Result<(), AslError> {
    if !machine.states.contains_key(&machine.start_at) {
        return Err(AslError::UnknownState {
            location: location.to_string(),
            field: "StartAt".to_string(),
            target: machine.start_at.clone(),
        });
    }
    let edges = edges(machine);
    for (state, field, target) in &edges {
        if !machine.states.contains_key(*target) {
            return Err(AslError::UnknownState {
                location: format!("state \"{state}\""),
                field: field.clone(),
                target: target.to_string(),
            });
        }
    }
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&str> = VecDeque::from([machine.start_at.as_str()]);
    while let Some(name) = queue.pop_front() {
        if reached.insert(name) {
            queue.extend(
                edges
                    .iter()
                    .filter(|(from, _, _)| *from == name)
                    .map(|(_, _, to)| *to),
            );
        }
    }
    if let Some(name) = machine
        .states
        .keys()
        .find(|n| !reached.contains(n.as_str()))
    {
        return Err(AslError::Unreachable {
            location: location.to_string(),
            state: name.clone(),
        });
    }
    if !machine.states.values().any(|s| is_terminal(&s.kind)) {
        return Err(AslError::NoTerminalState {
            location: location.to_string(),
        });
    }
    Ok(())
}
