//! Revision hashes are stable across builds and releases of the controller (both Services
//! select on them), change with any change of the pod template or the selector, and with
//! nothing else.

use bluegreen_crd::BlueGreenReleaseSpec;
use bluegreen_crd::revision::{REVISION_LEN, revision_of};
use serde_json::{Value, json};

/// A named edit of the spec.
type Mutation = fn(&mut Value);

fn base() -> Value {
    json!({
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "frontend"}},
            "spec": {"containers": [{"name": "web", "image": "web:1.0.0", "ports": [{"containerPort": 8080}]}]}
        },
        "service": {"name": "web"}
    })
}

fn revision(spec: Value) -> String {
    revision_of(&serde_json::from_value::<BlueGreenReleaseSpec>(spec).expect("a spec"))
}

#[test]
fn a_fixed_spec_has_a_fixed_revision() {
    // Changing this literal changes every running release's revision: both Services would
    // stop selecting the live pods until the controller re-deploys. Never update it casually.
    assert_eq!(revision(base()), "2d6429d0a9");
    assert_eq!(revision(base()).len(), REVISION_LEN);
    assert!(
        revision(base())
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

#[test]
fn any_template_or_selector_change_changes_the_revision() {
    let changes: &[(&str, Mutation)] = &[
        ("image", |s| {
            s["template"]["spec"]["containers"][0]["image"] = json!("web:1.0.1")
        }),
        ("label value", |s| {
            s["template"]["metadata"]["labels"]["tier"] = json!("backend")
        }),
        ("extra label", |s| {
            s["template"]["metadata"]["labels"]["track"] = json!("stable")
        }),
        ("annotation", |s| {
            s["template"]["metadata"]["annotations"] = json!({"a": "b"})
        }),
        ("env", |s| {
            s["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}])
        }),
        ("container port", |s| {
            s["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8081)
        }),
        ("second container", |s| {
            s["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "side", "image": "side:1"}))
        }),
        ("pod field", |s| {
            s["template"]["spec"]["terminationGracePeriodSeconds"] = json!(5)
        }),
        ("narrower selector", |s| {
            s["selector"] = json!({"matchLabels": {"app": "web"}})
        }),
    ];
    let original = revision(base());
    let mut seen = vec![original.clone()];
    for (what, change) in changes {
        let mut spec = base();
        change(&mut spec);
        let changed = revision(spec);
        assert_ne!(
            changed, original,
            "changing the {what} must change the revision"
        );
        assert!(
            !seen.contains(&changed),
            "changing the {what} collides with another change"
        );
        seen.push(changed);
    }
}

#[test]
fn other_spec_changes_keep_the_revision() {
    // A scale, a new version string or a promotion setting is not a new ReplicaSet.
    let changes: &[(&str, Mutation)] = &[
        ("replicas", |s| s["replicas"] = json!(5)),
        ("version", |s| s["version"] = json!("1.0.0-build.7")),
        ("service", |s| {
            s["service"] = json!({"name": "web2", "ports": [{"port": 80}]})
        }),
        ("promotion", |s| s["promotion"] = json!({"mode": "Manual"})),
        (
            "smoke tests",
            |s| s["smokeTests"] = json!([{"name": "t", "template": {"spec": {"containers": [{"name": "t", "image": "t"}]}}}]),
        ),
        ("selector equal to the template labels", |s| {
            s["selector"] = json!({"matchLabels": {"app": "web", "tier": "frontend"}})
        }),
    ];
    let original = revision(base());
    for (what, change) in changes {
        let mut spec = base();
        change(&mut spec);
        assert_eq!(
            revision(spec),
            original,
            "changing the {what} must keep the revision"
        );
    }
}

#[test]
fn key_order_of_the_input_does_not_matter() {
    let reordered = json!({
        "service": {"name": "web"},
        "template": {
            "spec": {"containers": [{"ports": [{"containerPort": 8080}], "image": "web:1.0.0", "name": "web"}]},
            "metadata": {"labels": {"tier": "frontend", "app": "web"}}
        }
    });
    assert_eq!(revision(reordered), revision(base()));
}
