//! Names, scope, subresources and `kubectl get` columns of the CRD (DESIGN §2).

use bluegreen_crd::crd::crd;

#[test]
fn names_and_scope() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("bluegreenreleases.bluegreen.dev")
    );
    assert_eq!(crd.spec.group, "bluegreen.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "BlueGreenRelease");
    assert_eq!(names.plural, "bluegreenreleases");
    assert_eq!(names.singular.as_deref(), Some("bluegreenrelease"));
    assert_eq!(
        names.short_names.as_deref(),
        Some(&["bgrelease".to_string(), "bgr".to_string()][..])
    );
    assert_eq!(
        names.categories.as_deref(),
        Some(&["bluegreen".to_string()][..])
    );

    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served);
    assert!(version.storage);
}

#[test]
fn status_and_scale_subresources() {
    let crd = crd();
    let subresources = crd.spec.versions[0]
        .subresources
        .as_ref()
        .expect("subresources are declared");
    assert!(subresources.status.is_some(), "status subresource");
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
}

#[test]
fn printer_columns() {
    let crd = crd();
    let columns: Vec<(&str, &str, &str, i32)> = crd.spec.versions[0]
        .additional_printer_columns
        .as_deref()
        .expect("printer columns are declared")
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.type_.as_str(),
                c.json_path.as_str(),
                c.priority.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Active", "string", ".status.activeColor", 0),
            ("Version", "string", ".status.activeVersion", 0),
            ("Preview", "string", ".status.previewVersion", 0),
            ("Phase", "string", ".status.phase", 0),
            (
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
                0
            ),
            ("Age", "date", ".metadata.creationTimestamp", 0),
            ("Message", "string", ".status.message", 1),
        ]
    );
}
