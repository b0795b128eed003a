//! What the API server does with an object before storing it, evaluated locally: defaults,
//! the structural schema, then the CEL rules (kube-cel) of the generated CRD.

use std::sync::OnceLock;

use kube::core::cel::{CompiledSchema, Validator, apply_defaults, compile_schema};
use serde_json::Value;

use crate::fixtures::schema_as_served;
use crate::schema_check::{Violation, check};

/// The outcome of admission for one object.
#[derive(Debug)]
pub struct Admission {
    pub schema: Vec<Violation>,
    pub cel: Vec<String>,
}

impl Admission {
    pub fn accepted(&self) -> bool {
        self.schema.is_empty() && self.cel.is_empty()
    }
}

/// Applies the schema defaults, as the API server does on create.
pub fn defaulted(object: &Value) -> Value {
    apply_defaults(&schema_as_served(), object)
}

/// Runs the schema pass and the CEL pass on the defaulted object.
pub fn admit(object: &Value) -> Admission {
    let schema = schema_as_served();
    let object = apply_defaults(&schema, object);
    static COMPILED: OnceLock<CompiledSchema> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| compile_schema(&schema));
    let cel = match Validator::new().validate_compiled(compiled, &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    };
    Admission {
        schema: check(&schema, &object),
        cel,
    }
}
