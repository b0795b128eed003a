//! kubesim: a Kubernetes API server simulator on loopback, good enough for kube-rs,
//! kubectl and Helm. See `README.md` for what it does and does not simulate.

pub mod apply;
pub mod audit;
pub mod cel;
pub mod cluster;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod fields;
mod handlers;
pub mod jsonpath;
pub mod kubeconfig;
pub mod kubelet;
pub mod meta;
pub mod patch;
pub mod proto;
pub mod registry;
pub mod schema;
pub mod script;
pub mod selector;
mod server;
pub mod sim;
pub mod store;
pub mod table;
mod validation;
pub mod watch;

pub use audit::AuditEntry;
pub use faults::{FailWrite, Fault, Matcher};
pub use server::{ClientConfig, Server, ServerBuilder, ServerError};
