//! Kyverno policies: loaded from `policies/` through typed structs, specialised per plan.
//!
//! We emit the CEL-based `policies.kyverno.io/v1` kinds (ValidatingPolicy, GeneratingPolicy):
//! they are GA in Kyverno 1.19 and follow Kubernetes' ValidatingAdmissionPolicy model, where
//! Kyverno is moving; see docs/rendered-repository.md, "Kyverno API".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Label on a workspace's host namespace that per-plan policies select on.
pub(crate) const PLAN_LABEL: &str = "hexabase.ai/plan";

/// One Kyverno policy document; fields the compiler does not touch are kept as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyDocument {
    api_version: String,
    kind: String,
    metadata: PolicyMetadata,
    spec: PolicySpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyMetadata {
    name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    match_constraints: Option<MatchConstraints>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    variables: Vec<Variable>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<LabelSelector>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variable {
    name: String,
    expression: String,
}

impl PolicyDocument {
    pub(crate) fn parse(name: &str, text: &str) -> Result<Self, Error> {
        let doc: Self =
            crate::intent::parse_yaml(text).map_err(|(path, reason)| Error::PolicyInvalid {
                name: name.to_owned(),
                reason: format!("{path}: {reason}"),
            })?;
        if doc.metadata.name != name {
            return Err(Error::PolicyInvalid {
                name: name.to_owned(),
                reason: format!(
                    "metadata.name is {:?}, not the file name",
                    doc.metadata.name
                ),
            });
        }
        Ok(doc)
    }

    /// True for policies that act per plan (they select namespaces by the plan label).
    pub(crate) fn per_plan(&self) -> bool {
        self.plan_selector().is_some()
    }

    fn plan_selector(&self) -> Option<&String> {
        self.spec
            .match_constraints
            .as_ref()?
            .namespace_selector
            .as_ref()?
            .match_labels
            .as_ref()?
            .get(PLAN_LABEL)
    }

    /// The copy of this policy for one plan: named `<policy>-<plan>`, selecting that plan's
    /// namespaces, admitting images from `allowed_registries` (prefixes) and exactly the
    /// `platform_images` (the platform's own, pinned in the values it renders).
    pub(crate) fn for_plan(
        &self,
        plan: &str,
        allowed_registries: &[String],
        platform_images: &[String],
    ) -> Self {
        let mut doc = self.clone();
        doc.metadata.name = format!("{}-{plan}", self.metadata.name);
        if let Some(labels) = doc
            .spec
            .match_constraints
            .as_mut()
            .and_then(|m| m.namespace_selector.as_mut())
            .and_then(|s| s.match_labels.as_mut())
        {
            labels.insert(PLAN_LABEL.to_owned(), plan.to_owned());
        }
        doc.set_variable("allowedRegistries", cel_list(allowed_registries));
        doc.set_variable("platformImages", cel_list(platform_images));
        doc
    }

    /// Sets a variable's CEL expression, when the policy has that variable.
    pub(crate) fn set_variable(&mut self, name: &str, expression: String) {
        if let Some(v) = self.spec.variables.iter_mut().find(|v| v.name == name) {
            v.expression = expression;
        }
    }

    pub(crate) fn labelled(mut self) -> Self {
        self.metadata
            .labels
            .insert("app.kubernetes.io/managed-by".into(), "hexabase".into());
        self
    }

    pub(crate) fn to_yaml(&self) -> Result<String, Error> {
        serde_saphyr::to_string(self).map_err(|e| Error::PolicyInvalid {
            name: self.metadata.name.clone(),
            reason: format!("does not serialize: {e}"),
        })
    }
}

/// A CEL string literal; escapes make any input safe to embed.
pub(crate) fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn cel_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| cel_string(s)).collect();
    format!("[{}]", items.join(", "))
}
