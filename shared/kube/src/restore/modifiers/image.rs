//! `image_registry`: moving every container image of an object's pod
//! template from one registry to another, the first thing a migration to
//! another cloud (or a DR region with its own mirror) needs.
//!
//! Images are matched as the container runtime reads them: a first path
//! component with a dot or a colon, or `localhost`, is a registry host;
//! any other image is on Docker Hub, so `from: docker.io` also moves
//! `nginx:1.27` (as `docker.io/library/nginx:1.27`).

use serde_json::Value;

use super::RegistrySpec;

/// Where pod specs sit in the kinds that have one: a Pod, every workload
/// with a template (and custom resources shaped alike), a CronJob.
const POD_SPECS: &[&str] = &[
    "/spec",
    "/spec/template/spec",
    "/spec/jobTemplate/spec/template/spec",
];
const CONTAINER_LISTS: &[&str] = &["initContainers", "containers", "ephemeralContainers"];
const DOCKER_HUB: &str = "docker.io";

/// A checked `image_registry` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRewrite {
    from: String,
    to: String,
}

impl RegistryRewrite {
    pub fn new(spec: &RegistrySpec) -> Result<Self, String> {
        for (field, value) in [("from", &spec.from), ("to", &spec.to)] {
            if value.is_empty() {
                return Err(format!("`{field}` is empty"));
            }
            if value.contains("://") || value.ends_with('/') || value.contains(char::is_whitespace)
            {
                return Err(format!(
                    "`{field}` {value:?} is not a registry: write a host with an optional port and \
                     path, such as registry.example.com:5000/team, without a scheme or a trailing /"
                ));
            }
        }
        if spec.from == spec.to {
            return Err(format!("`from` and `to` are both {:?}", spec.from));
        }
        Ok(RegistryRewrite {
            from: spec.from.clone(),
            to: spec.to.clone(),
        })
    }

    /// The image moved to the new registry, or `None` if it is not in the
    /// old one.
    pub fn rewrite(&self, image: &str) -> Option<String> {
        let full = if self.from == DOCKER_HUB || self.from.starts_with("docker.io/") {
            docker_hub_name(image)
        } else {
            image.to_string()
        };
        let rest = full.strip_prefix(&self.from)?.strip_prefix('/')?;
        Some(format!("{}/{rest}", self.to))
    }

    /// Rewrite every container image of `obj`'s pod specs; returns one line
    /// per image changed. An image field that is not a string is an error.
    pub(super) fn apply(&self, obj: &mut Value) -> Result<Vec<String>, String> {
        let mut changes = Vec::new();
        for spec in POD_SPECS {
            for list in CONTAINER_LISTS {
                let pointer = format!("{spec}/{list}");
                let Some(containers) = obj.pointer_mut(&pointer) else {
                    continue;
                };
                let Some(containers) = containers.as_array_mut() else {
                    return Err(format!("{pointer} is not a list"));
                };
                for (i, c) in containers.iter_mut().enumerate() {
                    let name = c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let Some(image) = c.get_mut("image") else {
                        continue;
                    };
                    let Some(old) = image.as_str() else {
                        return Err(format!("{pointer}/{i}/image is not a string"));
                    };
                    if let Some(new) = self.rewrite(old) {
                        changes.push(format!(
                            "image of container {name:?} ({pointer}/{i}): {old} -> {new}"
                        ));
                        *image = Value::String(new);
                    }
                }
            }
        }
        Ok(changes)
    }
}

/// The image's full name when its registry is implied: `nginx` is
/// `docker.io/library/nginx`, `team/app` is `docker.io/team/app`.
fn docker_hub_name(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        image.to_string()
    } else if image.contains('/') {
        format!("{DOCKER_HUB}/{image}")
    } else {
        format!("{DOCKER_HUB}/library/{image}")
    }
}
