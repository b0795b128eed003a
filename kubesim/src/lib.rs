//! kubesim: a Kubernetes API server simulator on loopback, good enough for kube-rs,
//! kubectl and Helm. See `README.md` for what it does and does not simulate.

mod apply;
mod audit;
mod cel;
mod cluster;
mod convert;
mod defaults;
mod discovery;
mod error;
mod faults;
mod fields;
mod handlers;
mod jsonpath;
mod kubeconfig;
mod kubelet;
mod meta;
mod patch;
mod proto;
mod registry;
mod schema;
mod script;
mod selector;
mod server;
mod sim;
mod store;
mod table;
mod validation;
mod watch;

// What users of the library need, and nothing of how it is built: a server to start, its
// cluster to seed and read directly (benchmarks), faults to inject, the audit to count
// requests by, the simulated kubelet of the upstream control plane, and admission of a
// custom resource as kubesim serves it (the CRD's own API tests).
pub use audit::AuditEntry;
pub use cluster::{Cluster, WriteOpts};
pub use error::Cause;
pub use faults::{FailWrite, Fault, Matcher};
pub use kubelet::{KubeletConfig, run as run_kubelet};
pub use registry::GroupResource;
pub use server::{ClientConfig, Server, ServerBuilder, ServerError};
pub use store::StoreEvent;

/// Admission of a custom resource as kubesim serves it, and as kube-apiserver does: the
/// openAPIV3Schema pass (defaults applied to `object`, unknown fields pruned, structural
/// checks), then the CEL rules of `compiled`, unless a blocking schema failure stops them.
/// Returns the causes of the 422 the API server would answer (none: admitted).
pub fn admit_custom_resource(
    object: &mut serde_json::Value,
    schema: &serde_json::Value,
    compiled: &kube_cel::CompiledSchema,
) -> Vec<Cause> {
    let mut causes = schema::apply(object, schema, None).causes;
    cel::after_schema(compiled, object, None, &mut causes);
    causes
}
