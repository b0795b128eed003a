//! What the API server does with an object before storing it, evaluated locally with
//! kubesim's admission code (the same that the e2e parity test holds against a real
//! kube-apiserver): schema defaults, pruning and structural validation, then the CEL rules
//! of the generated CRD, unless a blocking schema failure stops them as upstream does.

use std::sync::OnceLock;

use kube::core::cel::{CompiledSchema, apply_defaults, compile_schema};
use kubesim::Cause;
use serde_json::Value;

use crate::fixtures::schema_as_served;

/// The outcome of admission for one object: the causes of the 422 the API server would
/// answer, in its terms (`reason` such as `FieldValueTooLong`, `field` such as
/// `spec.version`).
#[derive(Debug)]
pub struct Admission {
    pub causes: Vec<Cause>,
}

impl Admission {
    pub fn accepted(&self) -> bool {
        self.causes.is_empty()
    }

    /// Whether a cause of this reason names this field.
    pub fn refuses(&self, field: &str, reason: &str) -> bool {
        self.causes
            .iter()
            .any(|c| c.field == field && c.reason == reason)
    }

    /// Whether a failed CEL rule's message contains this text.
    pub fn cel_says(&self, text: &str) -> bool {
        self.causes.iter().any(|c| c.message.contains(text))
    }
}

/// Applies the schema defaults, as the API server does on create.
pub fn defaulted(object: &Value) -> Value {
    apply_defaults(&schema_as_served(), object)
}

/// Admission of a create: schema pass, then the CEL pass.
pub fn admit(object: &Value) -> Admission {
    let schema = schema_as_served();
    static COMPILED: OnceLock<CompiledSchema> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| compile_schema(&schema));
    let mut object = object.clone();
    let causes = kubesim::admit_custom_resource(&mut object, &schema, compiled);
    Admission { causes }
}
