//! One table of invalid releases drives both admission (schema + CEL, evaluated locally against
//! the generated CRD) and the controller's own `validate()`, so the two cannot drift: a rule
//! added to one side without the other fails here.

use bluegreen_crd::validate::validate;

use crate::admission::admit;
use crate::fixtures::valid;
use crate::invalid_spec_cases::{CASES, Cel, Field, Schema, Undecodable, object};

#[test]
fn the_base_object_is_valid_everywhere() {
    let admission = admit(&valid());
    assert!(admission.accepted(), "{admission:#?}");
    assert_eq!(validate(&crate::fixtures::release(&valid())), Ok(()));
}

#[test]
fn admission_rejects_every_invalid_case() {
    let mut failures = Vec::new();
    for case in CASES {
        let admission = admit(&object(case));
        let found = match case.admission {
            Cel(message) => admission.cel_says(message),
            Schema(field, reason) => admission.refuses(field, reason),
        };
        if !found {
            failures.push(format!(
                "{}: expected {:?}, got {admission:#?}",
                case.name, case.admission
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn controller_rejects_every_invalid_case() {
    let mut failures = Vec::new();
    for case in CASES {
        let object = object(case);
        let decoded = serde_json::from_value::<bluegreen_crd::BlueGreenRelease>(object);
        match (case.controller, decoded) {
            (Undecodable(text), Err(e)) if e.to_string().contains(text) => {}
            (Undecodable(_), other) => failures.push(format!(
                "{}: expected a decode error, got {other:?}",
                case.name
            )),
            (Field(_, _), Err(e)) => failures.push(format!("{}: does not decode: {e}", case.name)),
            (Field(field, message), Ok(release)) => match validate(&release) {
                Err(invalid)
                    if invalid
                        .0
                        .iter()
                        .any(|e| e.field == field && e.message.contains(message)) => {}
                other => failures.push(format!(
                    "{}: expected {field}: ...{message}..., got {other:?}",
                    case.name
                )),
            },
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
