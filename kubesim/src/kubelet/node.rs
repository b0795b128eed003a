//! The Node object: registered Ready with room for any test's pods.
//!
//! No heartbeat is kept: the control plane from `scripts/kube.sh` runs no node-lifecycle
//! controller, and its API server does not taint new Nodes (`TaintNodesByCondition` off),
//! so the node stays schedulable for as long as it exists.

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{KubeletConfig, KubeletError};

pub async fn register(client: &Client, config: &KubeletConfig) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &config.node_name;
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kubesim-kubelet"
        }},
        "spec": {}
    }))
    .expect("a valid Node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        // A restarted kubelet finds its node.
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(KubeletError::api(format!("create Node {name}"), e)),
    }
    let now = jiff::Timestamp::now().to_string();
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity =
        json!({"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"});
    let status = json!({"status": {
        "conditions": [
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.addr.ip().to_string()},
            {"type": "Hostname", "address": name}
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.addr.port()}},
        "capacity": capacity,
        "allocatable": capacity,
        "nodeInfo": {
            "machineID": name, "systemUUID": name, "bootID": name,
            "kernelVersion": "simulated", "osImage": "kubesim kubelet",
            "containerRuntimeVersion": "kubesim://0", "kubeletVersion": "v1.34.4",
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
        }
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(|e| KubeletError::api(format!("set the status of Node {name}"), e))?;
    Ok(())
}
