//! The resources lab serves and the discovery documents describing them
//! (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`).

use crate::model::Kind;
use serde_json::{Value, json};

/// A served resource: one of lab's kinds, or `events.k8s.io/v1` events
/// (the core events, converted as the API server converts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Res {
    Obj(Kind),
    EventV1,
}

pub struct Info {
    pub res: Res,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [(&'static str, &'static str, &'static [&'static str])],
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const RO: &[&str] = &["get", "list", "watch"];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

pub const RESOURCES: &[Info] = &[
    Info {
        res: Res::Obj(Kind::Namespace),
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        categories: &[],
        verbs: NS_VERBS,
        subresources: &[("status", "Namespace", &["get"])],
    },
    Info {
        res: Res::Obj(Kind::Node),
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short: &["no"],
        categories: &[],
        // Registered by lab, never created or deleted by users.
        verbs: &["get", "list", "patch", "update", "watch"],
        subresources: &[("status", "Node", &["get"])],
    },
    Info {
        res: Res::Obj(Kind::Pod),
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("attach", "PodAttachOptions", &["create", "get"]),
            ("eviction", "Eviction", &["create"]),
            ("exec", "PodExecOptions", &["create", "get"]),
            ("log", "Pod", &["get"]),
            ("portforward", "PodPortForwardOptions", &["create", "get"]),
            ("status", "Pod", &["get"]),
        ],
    },
    Info {
        res: Res::Obj(Kind::Service),
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
        categories: &["all"],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[("status", "Service", &["get"])],
    },
    Info {
        res: Res::Obj(Kind::Endpoints),
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: &["ep"],
        categories: &[],
        verbs: RW,
        subresources: &[],
    },
    Info {
        res: Res::Obj(Kind::ConfigMap),
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        categories: &[],
        verbs: RW,
        subresources: &[],
    },
    Info {
        res: Res::Obj(Kind::Event),
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        verbs: RO,
        subresources: &[],
    },
    Info {
        res: Res::Obj(Kind::Deployment),
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", &["get", "patch", "update"]),
            ("status", "Deployment", &["get"]),
        ],
    },
    Info {
        res: Res::Obj(Kind::ReplicaSet),
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", &["get", "patch", "update"]),
            ("status", "ReplicaSet", &["get"]),
        ],
    },
    Info {
        res: Res::Obj(Kind::StatefulSet),
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short: &["sts"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", &["get", "patch", "update"]),
            ("status", "StatefulSet", &["get"]),
        ],
    },
    Info {
        res: Res::Obj(Kind::EndpointSlice),
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short: &[],
        categories: &[],
        verbs: RO,
        subresources: &[],
    },
    Info {
        res: Res::Obj(Kind::Secret),
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
    },
    Info {
        res: Res::Obj(Kind::Job),
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short: &[],
        categories: &["all"],
        verbs: RW,
        subresources: &[("status", "Job", &["get"])],
    },
    Info {
        res: Res::EventV1,
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        verbs: RO,
        subresources: &[],
    },
];

pub const GROUPS: &[(&str, &str)] = &[
    ("apps", "v1"),
    ("batch", "v1"),
    ("discovery.k8s.io", "v1"),
    ("events.k8s.io", "v1"),
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Info> {
    RESOURCES
        .iter()
        .find(|i| i.group == group && i.version == version && i.plural == plural)
}

#[cfg(test)]
pub fn info_of(kind: Kind) -> &'static Info {
    RESOURCES
        .iter()
        .find(|i| i.res == Res::Obj(kind))
        .unwrap_or(&RESOURCES[0])
}

pub fn api_version(i: &Info) -> String {
    if i.group.is_empty() {
        i.version.to_string()
    } else {
        format!("{}/{}", i.group, i.version)
    }
}

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-lab",
        "gitCommit": "lab", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "n/a", "compiler": "rustc", "platform": "linux/amd64",
        "emulationMajor": "1", "emulationMinor": "32"
    })
}

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = GROUPS.iter().find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
        "versions": [gv.clone()], "preferredVersion": gv}))
}

/// `APIResourceList` of one group version (`""` = the core group).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let core = group.is_empty() && version == "v1";
    if !core && !GROUPS.contains(&(group, version)) {
        return None;
    }
    let mut resources = Vec::new();
    for i in RESOURCES
        .iter()
        .filter(|i| i.group == group && i.version == version)
    {
        let mut r = json!({"name": i.plural, "singularName": i.singular,
            "namespaced": i.namespaced, "kind": i.kind, "verbs": i.verbs});
        if !i.short.is_empty() {
            r["shortNames"] = json!(i.short);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        resources.push(r);
        for (sub, kind, verbs) in i.subresources {
            let mut s = json!({"name": format!("{}/{sub}", i.plural), "singularName": "",
                "namespaced": i.namespaced, "kind": kind, "verbs": verbs});
            if *sub == "scale" {
                s["group"] = json!("autoscaling");
                s["version"] = json!("v1");
            }
            if *sub == "eviction" {
                s["group"] = json!("policy");
                s["version"] = json!("v1");
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
        "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_served_once() {
        for k in Kind::ALL {
            assert_eq!(
                RESOURCES.iter().filter(|i| i.res == Res::Obj(k)).count(),
                1,
                "{k}"
            );
            let i = info_of(k);
            assert_eq!(api_version(i), k.api_version());
            assert_eq!(i.plural, k.plural());
        }
        let core = resource_list("", "v1").unwrap();
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/log")
        );
        assert!(resource_list("rbac.authorization.k8s.io", "v1").is_none());
        let batch = resource_list("batch", "v1").unwrap();
        assert!(
            batch["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "jobs")
        );
    }
}
