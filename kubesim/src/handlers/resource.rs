//! The resource API: `/api/v1/...` and `/apis/{group}/{version}/...`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::response::{ListBody, content_type, decode_object, error, json, read_body, text};
use crate::audit::AuditEntry;
use crate::cluster::{DeleteOpts, ListOpts, Propagation, Sub, WriteOpts};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::faults::RequestInfo;
use crate::patch::PatchType;
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::table;
use crate::watch::{self, WatchParams};

/// A parsed resource URL.
#[derive(Debug, Default, Clone)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

enum Parsed {
    Discovery(Value),
    Resource(Target),
}

fn parse_path(app: &AppState, path: &str) -> Result<Parsed, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g] => {
            let reg = app.cluster.lock().registry.clone();
            return discovery::api_group(&reg, g)
                .map(Parsed::Discovery)
                .ok_or_else(|| ApiError::not_found_path(path));
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::not_found_path(path)),
    };
    if rest.is_empty() {
        let reg = app.cluster.lock().registry.clone();
        return discovery::resource_list(&reg, group, version)
            .map(Parsed::Discovery)
            .ok_or_else(|| ApiError::not_found_path(path));
    }
    let mut t = Target {
        group: group.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    let own = |s: &&str| s.to_string();
    match rest {
        ["namespaces", ns, sub] if group.is_empty() && matches!(*sub, "status" | "finalize") => {
            t.resource = "namespaces".into();
            t.name = Some(ns.to_string());
            t.subresource = Some(sub.to_string());
        }
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            t.namespace = Some(ns.to_string());
            t.resource = plural.to_string();
            t.name = tail.first().map(own);
            t.subresource = tail.get(1).map(own);
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            t.resource = plural.to_string();
            t.name = tail.first().map(own);
            t.subresource = tail.get(1).map(own);
        }
        _ => return Err(ApiError::not_found_path(path)),
    }
    Ok(Parsed::Resource(t))
}

fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

pub async fn dispatch(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let t = match parse_path(&app, uri.path()) {
        Ok(Parsed::Resource(t)) => t,
        Ok(Parsed::Discovery(v)) => return json(200, &v),
        Err(e) => return error(&e),
    };
    let q: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let verb = verb_of(&method, &t, &q);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ct = content_type(&headers);
    let mut entry = AuditEntry {
        verb: verb.to_string(),
        group: t.group.clone(),
        resource: t.resource.clone(),
        subresource: t.subresource.clone().unwrap_or_default(),
        namespace: t.namespace.clone().unwrap_or_default(),
        name: t.name.clone().unwrap_or_default(),
        field_manager: q.get("fieldManager").cloned().unwrap_or_default(),
        patch_type: if verb == "patch" {
            match PatchType::from_content_type(&ct) {
                Some(PatchType::Merge) => "merge",
                Some(PatchType::Json) => "json",
                Some(PatchType::Strategic) => "strategic",
                Some(PatchType::Apply) => "apply",
                None => "",
            }
            .to_string()
        } else {
            String::new()
        },
        user_agent: user_agent.clone(),
        ..Default::default()
    };
    let verdict = app.faults.check(&RequestInfo {
        verb: entry.verb.clone(),
        resource: entry.resource.clone(),
        subresource: entry.subresource.clone(),
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
    });
    if let Some(d) = verdict.delay {
        tokio::time::sleep(d).await;
    }
    let resp = match verdict.fail {
        Some((code, msg)) => error(&ApiError::injected(code, msg)),
        None => {
            let req = Request {
                app: app.clone(),
                t,
                q,
                headers,
                verb,
                user_agent,
            };
            match req.serve(method, body).await {
                Ok(r) => r,
                Err(e) => error(&e),
            }
        }
    };
    entry.code = resp.status().as_u16();
    app.audit.record(entry);
    resp
}

struct Request {
    app: AppState,
    t: Target,
    q: HashMap<String, String>,
    headers: HeaderMap,
    verb: &'static str,
    user_agent: String,
}

impl Request {
    fn def(&self) -> ApiResult<Arc<ResourceDef>> {
        self.app
            .cluster
            .resolve(&self.t.group, &self.t.version, &self.t.resource)
            .ok_or_else(|| {
                ApiError::not_found_path(&format!(
                    "the server could not find the requested resource {}",
                    self.t.resource
                ))
            })
    }

    fn ns(&self) -> &str {
        self.t.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.t.name.as_deref().unwrap_or("")
    }

    fn write_opts(&self) -> WriteOpts {
        let manager = match self.q.get("fieldManager") {
            Some(m) if !m.is_empty() => m.clone(),
            // The apiserver defaults the manager to the user agent's product name.
            _ if self.verb == "patch" && self.patch_type() == Some(PatchType::Apply) => {
                String::new()
            }
            _ => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("unknown")
                .to_string(),
        };
        WriteOpts {
            manager,
            dry_run: self.q.get("dryRun").is_some_and(|d| d == "All"),
            force: self.q.get("force").is_some_and(|f| f == "true"),
            strict: self.q.get("fieldValidation").is_some_and(|f| f == "Strict"),
        }
    }

    fn patch_type(&self) -> Option<PatchType> {
        PatchType::from_content_type(&content_type(&self.headers))
    }

    fn list_opts(&self) -> ApiResult<ListOpts> {
        Ok(ListOpts {
            labels: LabelSelector::parse(
                self.q
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )?,
            fields: FieldSelector::parse(
                self.q
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )?,
            limit: self
                .q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0),
            continue_token: self.q.get("continue").cloned(),
        })
    }

    fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn partial(&self) -> bool {
        crate::meta::wants_partial(self.accept())
    }

    fn table_include(&self) -> Option<String> {
        table::wants_table(self.accept()).then(|| {
            self.q
                .get("includeObject")
                .cloned()
                .unwrap_or_else(|| "Metadata".into())
        })
    }

    fn sub(&self) -> ApiResult<Sub> {
        match self.t.subresource.as_deref() {
            None => Ok(Sub::Main),
            Some("status") => Ok(Sub::Status),
            Some(other) => Err(ApiError::not_found_path(&format!(
                "{}/{other}",
                self.t.resource
            ))),
        }
    }

    async fn serve(self, method: Method, body: Body) -> ApiResult<Response> {
        let def = self.def()?;
        if def.namespaced
            && self.t.namespace.is_none()
            && !matches!(self.verb, "list" | "watch" | "deletecollection")
        {
            return Err(ApiError::not_found_path(&format!(
                "the server could not find the requested resource {}",
                self.t.resource
            )));
        }
        if !def.namespaced && self.t.namespace.is_some() {
            return Err(ApiError::not_found_path(&format!(
                "{} is not namespaced",
                def.plural
            )));
        }
        let sub = self.t.subresource.as_deref();
        let valid_sub = match sub {
            None => true,
            Some("status") => def.status,
            Some("scale") => def.scale.is_some(),
            Some("log") => def.log && method == Method::GET,
            Some("finalize") => def.plural == "namespaces",
            _ => false,
        };
        if !valid_sub || (sub.is_some() && self.t.name.is_none()) {
            return Err(ApiError::not_found_path(&format!(
                "{}/{}",
                self.t.resource,
                sub.unwrap_or("")
            )));
        }
        let bytes = read_body(body).await?;
        if def.group == "authorization.k8s.io" {
            return self.review(&def, &bytes);
        }
        let cluster = self.app.cluster.clone();
        let v = self.t.version.as_str();
        match (self.verb, sub) {
            ("get", Some("scale")) => Ok(json(
                200,
                &cluster.get_scale(&def, v, self.ns(), self.name())?,
            )),
            ("get", Some("log")) => self.log(&def),
            ("get", _) => {
                let obj = cluster.get(&def, v, self.ns(), self.name())?;
                match self.table_include() {
                    Some(inc) => {
                        let rv = obj["metadata"]["resourceVersion"].clone();
                        Ok(json(
                            200,
                            &table::build(&def, v, &[obj], &inc, json!({"resourceVersion": rv})),
                        ))
                    }
                    None if self.partial() => Ok(json(200, &crate::meta::partial(&obj))),
                    None => Ok(json(200, &obj)),
                }
            }
            ("list", _) => self.list(&def),
            ("watch", _) => self.watch(def.clone()),
            ("create", _) => {
                if self.t.name.is_some() {
                    return Err(ApiError::method_not_allowed(
                        "POST is not supported on a named resource",
                    ));
                }
                let obj = decode_object(&content_type(&self.headers), &bytes)?;
                self.check_identity(&def, &obj)?;
                let created = cluster.create(&def, v, self.ns(), obj, &self.write_opts())?;
                Ok(json(201, &created))
            }
            ("update", Some("scale")) => {
                let obj = decode_object(&content_type(&self.headers), &bytes)?;
                Ok(json(
                    200,
                    &cluster.update_scale(
                        &def,
                        v,
                        self.ns(),
                        self.name(),
                        obj,
                        &self.write_opts(),
                    )?,
                ))
            }
            ("update", _) => {
                let obj = decode_object(&content_type(&self.headers), &bytes)?;
                self.check_identity(&def, &obj)?;
                Ok(json(
                    200,
                    &cluster.update(
                        &def,
                        v,
                        self.ns(),
                        self.name(),
                        obj,
                        self.sub()?,
                        &self.write_opts(),
                    )?,
                ))
            }
            ("patch", Some("scale")) => {
                let kind = self.patch_type().ok_or_else(|| {
                    ApiError::unsupported_media_type(&content_type(&self.headers))
                })?;
                let mut scale = cluster.get_scale(&def, v, self.ns(), self.name())?;
                if kind == PatchType::Apply {
                    let cfg: Value = crate::patch::parse_json(&bytes).or_else(|_| {
                        serde_saphyr::from_str(std::str::from_utf8(&bytes).unwrap_or(""))
                            .map_err(|e| ApiError::bad_request(e.to_string()))
                    })?;
                    crate::apply::merge_applied(
                        &mut scale,
                        &cfg,
                        &mut Vec::new(),
                        crate::apply::ListKeys::builtin(),
                    );
                } else {
                    crate::patch::apply_patch(&mut scale, kind, &bytes)?;
                }
                Ok(json(
                    200,
                    &cluster.update_scale(
                        &def,
                        v,
                        self.ns(),
                        self.name(),
                        scale,
                        &self.write_opts(),
                    )?,
                ))
            }
            ("patch", _) => {
                let kind = self.patch_type().ok_or_else(|| {
                    ApiError::unsupported_media_type(&content_type(&self.headers))
                })?;
                Ok(json(
                    200,
                    &cluster.patch(
                        &def,
                        v,
                        self.ns(),
                        self.name(),
                        kind,
                        &bytes,
                        self.sub()?,
                        &self.write_opts(),
                    )?,
                ))
            }
            ("delete", _) => {
                let opts = self.delete_opts(&bytes)?;
                Ok(json(
                    200,
                    &cluster.delete(&def, v, self.ns(), self.name(), &opts)?,
                ))
            }
            ("deletecollection", _) => {
                let opts = self.delete_opts(&bytes)?;
                let items = cluster.delete_collection(
                    &def,
                    v,
                    self.t.namespace.as_deref(),
                    &self.list_opts()?,
                    &opts,
                )?;
                Ok(json(
                    200,
                    &ListBody {
                        kind: format!("{}List", def.kind),
                        api_version: def.api_version(v),
                        metadata: json!({}),
                        items: &items,
                    },
                ))
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "{method} is not supported"
            ))),
        }
    }

    /// Body identity must agree with the URL (namespace, kind, apiVersion).
    fn check_identity(&self, def: &ResourceDef, obj: &Value) -> ApiResult<()> {
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if def.namespaced && !body_ns.is_empty() && body_ns != self.ns() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str)
            && k != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the body ({k}) does not match the resource {}",
                def.plural
            )));
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
            && !def.versions.iter().any(|v| def.api_version(v) == av)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version(&self.t.version)
            )));
        }
        Ok(())
    }

    fn delete_opts(&self, body: &[u8]) -> ApiResult<DeleteOpts> {
        let b: Value = if body.is_empty() {
            json!({})
        } else if content_type(&self.headers).starts_with(crate::proto::MEDIA_TYPE) {
            crate::proto::decode(body)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let policy = self.q.get("propagationPolicy").cloned().or_else(|| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let orphan = self.q.get("orphanDependents").is_some_and(|o| o == "true")
            || b.get("orphanDependents") == Some(&json!(true));
        let propagation = match policy.as_deref() {
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some("Background") | None => {
                if orphan {
                    Propagation::Orphan
                } else {
                    Propagation::Background
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid propagationPolicy {other:?}"
                )));
            }
        };
        let dry = self.q.get("dryRun").is_some_and(|d| d == "All")
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.contains(&json!("All")));
        Ok(DeleteOpts {
            propagation,
            precondition_rv: b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_uid: b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run: dry,
        })
    }

    fn list(&self, def: &ResourceDef) -> ApiResult<Response> {
        let v = self.t.version.as_str();
        let res = self
            .app
            .cluster
            .list(def, v, self.t.namespace.as_deref(), &self.list_opts()?)?;
        let mut meta = json!({"resourceVersion": res.resource_version.to_string()});
        if let Some(c) = &res.continue_token {
            meta["continue"] = json!(c);
        }
        if let Some(r) = res.remaining {
            meta["remainingItemCount"] = json!(r);
        }
        if let Some(inc) = self.table_include() {
            return Ok(json(200, &table::build(def, v, &res.items, &inc, meta)));
        }
        if self.partial() {
            let items: Vec<Value> = res.items.iter().map(|i| crate::meta::partial(i)).collect();
            return Ok(json(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            ));
        }
        Ok(json(
            200,
            &ListBody {
                kind: format!("{}List", def.kind),
                api_version: def.api_version(v),
                metadata: meta,
                items: &res.items,
            },
        ))
    }

    fn watch(&self, def: Arc<ResourceDef>) -> ApiResult<Response> {
        let flag = |k: &str| self.q.get(k).is_some_and(|v| v == "true" || v == "1");
        let params = WatchParams {
            resource_version: self.q.get("resourceVersion").cloned(),
            labels: LabelSelector::parse(
                self.q
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )?,
            fields: FieldSelector::parse(
                self.q
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )?,
            timeout: self
                .q
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map(Duration::from_secs),
            bookmarks: flag("allowWatchBookmarks"),
            send_initial_events: flag("sendInitialEvents"),
            table: self.table_include(),
            metadata_only: self.partial(),
        };
        let stream = watch::start(
            self.app.cluster.clone(),
            def,
            &self.t.version,
            self.t.namespace.clone(),
            params,
            self.app.close_watches.subscribe(),
        )?;
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("static header"),
        );
        Ok(r)
    }

    /// Access reviews: kubesim has no authorization, so everything is allowed.
    fn review(&self, def: &ResourceDef, bytes: &[u8]) -> ApiResult<Response> {
        if self.verb != "create" {
            return Err(ApiError::method_not_allowed(format!(
                "{} only supports create",
                def.plural
            )));
        }
        // kubectl sends these as protobuf; the answer does not depend on the question.
        let mut review = decode_object(&content_type(&self.headers), bytes).unwrap_or_else(
            |_| json!({"apiVersion": def.api_version(&self.t.version), "kind": def.kind, "spec": {}}),
        );
        review["status"] = if def.plural == "selfsubjectrulesreviews" {
            json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                   "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
        } else {
            json!({"allowed": true, "reason": "kubesim does not authorize requests"})
        };
        Ok(json(201, &review))
    }

    fn log(&self, def: &ResourceDef) -> ApiResult<Response> {
        let pod = self
            .app
            .cluster
            .get(def, &self.t.version, self.ns(), self.name())?;
        let log = crate::script::log(&pod);
        let out = match self
            .q
            .get("tailLines")
            .and_then(|t| t.parse::<usize>().ok())
        {
            Some(n) => {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(n);
                let mut s = lines[start..].join("\n");
                if !s.is_empty() {
                    s.push('\n');
                }
                s
            }
            None => {
                let mut s = log;
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
        };
        Ok(text(out))
    }
}
