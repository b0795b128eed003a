//! Kubeconfig for clients of a kubesim server: plain HTTP, no auth.

use std::net::SocketAddr;

/// Cluster, context and user are all called `kubesim`; namespace `default`.
pub fn render(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    server: http://{addr}
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
    namespace: default
current-context: kubesim
users:
- name: kubesim
  user: {{}}
preferences: {{}}
"
    )
}
