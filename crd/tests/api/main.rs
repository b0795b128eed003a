//! Tests of the `bluegreen.dev/v1alpha1` API: the committed CRD, its schema, its CEL rules,
//! the controller's own validation, and revision hashing. One binary, so the 2-core CI machine
//! links kube once.

mod admission;
mod fixtures;
mod invalid_spec_cases;

mod cel_rules;
mod controller_validation;
mod crd_file;
mod invalid_specs;
mod names;
mod revision;
mod round_trip;
mod stored_statuses;
