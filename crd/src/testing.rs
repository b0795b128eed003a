//! Release fixtures for tests (feature `testing`): one builder shared by the planner tests,
//! the mock-API tests and the scenario suite, instead of a copy of a release in each.
//!
//! ```
//! use bluegreen_crd::testing::TestRelease;
//! let release = TestRelease::new("web", "web:1").replicas(3).smoke_test("http").build();
//! assert_eq!(release.spec.replicas, 3);
//! ```

use serde_json::{Value, json};

use crate::BlueGreenRelease;

/// A release manifest under construction; every setter returns the builder.
#[derive(Clone, Debug)]
pub struct TestRelease {
    manifest: Value,
}

impl TestRelease {
    /// A valid release `name` of one container running `image`, labelled `app: <name>`,
    /// behind an active Service named `name` (port 80 to 8080), one replica, no tests.
    pub fn new(name: &str, image: &str) -> Self {
        TestRelease {
            manifest: json!({
                "apiVersion": "bluegreen.dev/v1alpha1",
                "kind": "BlueGreenRelease",
                "metadata": {"name": name},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": name, "image": image}]}
                    },
                    "replicas": 1,
                    "service": {"name": name, "ports": [{"port": 80, "targetPort": 8080}]},
                }
            }),
        }
    }

    /// The release the planner and mock-API tests share: `web` in namespace `shop` as
    /// stored (uid, generation 1), three replicas behind Service `web-active`, every
    /// timing at its documented default, one smoke test per name in `tests`.
    pub fn web(image: &str, tests: &[&str]) -> Self {
        let mut release = TestRelease::new("web", image)
            .namespace("shop")
            .stored("release-uid", 1)
            .replicas(3)
            .service("web-active")
            .set("/spec/service/ports/0/protocol", json!("TCP"))
            .set("/spec/scaleDownDelaySeconds", json!(300))
            .set("/spec/progressDeadlineSeconds", json!(600))
            .set("/spec/revisionHistoryLimit", json!(10))
            .set(
                "/spec/promotion",
                json!({"mode": "Auto", "autoPromoteAfterSeconds": 0}),
            )
            .set("/spec/smokeTests", json!([]));
        for test in tests {
            release = release.smoke_test(test);
        }
        release
    }

    pub fn namespace(self, namespace: &str) -> Self {
        self.set("/metadata/namespace", json!(namespace))
    }

    /// As the API server returns it: with a uid and a generation.
    pub fn stored(self, uid: &str, generation: i64) -> Self {
        self.set("/metadata/uid", json!(uid))
            .set("/metadata/generation", json!(generation))
    }

    pub fn replicas(self, replicas: i32) -> Self {
        self.set("/spec/replicas", json!(replicas))
    }

    /// The active Service's name.
    pub fn service(self, name: &str) -> Self {
        self.set("/spec/service/name", json!(name))
    }

    /// An annotation on the application's pod template (e.g. kubesim's pod behaviour).
    pub fn pod_annotation(self, key: &str, value: &str) -> Self {
        let pointer = format!("/spec/template/metadata/annotations/{}", escape(key));
        self.set(&pointer, json!(value))
    }

    /// A smoke test running `curl:8`.
    pub fn smoke_test(self, name: &str) -> Self {
        self.smoke_test_annotated(name, &[])
    }

    /// A smoke test running `curl:8` whose pod template carries `annotations` (kubesim's
    /// `kubesim.dev/exit-code`, `run-ms`, `log`).
    pub fn smoke_test_annotated(mut self, name: &str, annotations: &[(&str, &str)]) -> Self {
        let mut template = json!({"spec": {"containers": [{"name": "t", "image": "curl:8"}]}});
        if !annotations.is_empty() {
            let annotations: serde_json::Map<String, Value> = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            template["metadata"] = json!({"annotations": annotations});
        }
        let spec = &mut self.manifest["spec"];
        if !spec["smokeTests"].is_array() {
            spec["smokeTests"] = json!([]);
        }
        let tests = spec["smokeTests"].as_array_mut().expect("an array");
        tests.push(json!({"name": name, "template": template}));
        self
    }

    /// Sets any field by JSON pointer, creating the objects on the way.
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        let mut at = &mut self.manifest;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            at = match at {
                Value::Array(items) => {
                    let index: usize = token.parse().expect("an array index");
                    &mut items[index]
                }
                other => {
                    if !other.is_object() {
                        *other = json!({});
                    }
                    other
                        .as_object_mut()
                        .expect("an object")
                        .entry(token)
                        .or_insert(Value::Null)
                }
            };
        }
        *at = value;
        self
    }

    /// The manifest, as it would be applied.
    pub fn json(&self) -> Value {
        self.manifest.clone()
    }

    pub fn build(&self) -> BlueGreenRelease {
        serde_json::from_value(self.json()).expect("a test release parses")
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
