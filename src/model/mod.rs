//! The object model: Kubernetes API types (from `k8s-openapi`), the kinds lab
//! serves, manifest parsing with strict field checking, and validation.

pub mod applied;
pub mod images;
pub mod kind;
pub mod labels;
pub mod parse;
pub mod validate;

pub use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
pub use k8s_openapi::api::batch::v1::Job;
pub use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service,
};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub use kind::Kind;

use serde::{Deserialize, Serialize};

/// One stored object of a kind lab serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    Pod(Box<Pod>),
    Service(Box<Service>),
    ConfigMap(ConfigMap),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    StatefulSet(Box<StatefulSet>),
    Endpoints(Endpoints),
    EndpointSlice(EndpointSlice),
    Event(Box<Event>),
    Secret(Secret),
    Job(Box<Job>),
    Node(Box<Node>),
}

macro_rules! each_object {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Object::Namespace($o) => $body,
            Object::Pod($o) => $body,
            Object::Service($o) => $body,
            Object::ConfigMap($o) => $body,
            Object::Deployment($o) => $body,
            Object::ReplicaSet($o) => $body,
            Object::StatefulSet($o) => $body,
            Object::Endpoints($o) => $body,
            Object::EndpointSlice($o) => $body,
            Object::Event($o) => $body,
            Object::Secret($o) => $body,
            Object::Job($o) => $body,
            Object::Node($o) => $body,
        }
    };
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Deployment(_) => Kind::Deployment,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Event(_) => Kind::Event,
            Object::Secret(_) => Kind::Secret,
            Object::Job(_) => Kind::Job,
            Object::Node(_) => Kind::Node,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_object!(self, o => &o.metadata)
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_object!(self, o => &mut o.metadata)
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("")
    }

    /// The object as Kubernetes JSON, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> serde_json::Value {
        let v = each_object!(self, o => serde_json::to_value(o));
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Write the object's Kubernetes JSON (what [`Object::to_json`] holds)
    /// without building a `Value`.
    pub fn write_json<W: std::io::Write>(&self, w: W) -> serde_json::Result<()> {
        each_object!(self, o => serde_json::to_writer(w, o))
    }

    /// Decode a typed object of a known kind from Kubernetes JSON (no strict
    /// checking: use [`parse::decode`] for user input).
    pub fn from_json(kind: Kind, v: serde_json::Value) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(serde_json::from_value(v)?),
            Kind::Pod => Object::Pod(serde_json::from_value(v)?),
            Kind::Service => Object::Service(serde_json::from_value(v)?),
            Kind::ConfigMap => Object::ConfigMap(serde_json::from_value(v)?),
            Kind::Deployment => Object::Deployment(serde_json::from_value(v)?),
            Kind::ReplicaSet => Object::ReplicaSet(serde_json::from_value(v)?),
            Kind::StatefulSet => Object::StatefulSet(serde_json::from_value(v)?),
            Kind::Endpoints => Object::Endpoints(serde_json::from_value(v)?),
            Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_value(v)?),
            Kind::Event => Object::Event(serde_json::from_value(v)?),
            Kind::Secret => Object::Secret(serde_json::from_value(v)?),
            Kind::Job => Object::Job(serde_json::from_value(v)?),
            Kind::Node => Object::Node(serde_json::from_value(v)?),
        })
    }
}

/// RFC 3339 timestamp of now, as Kubernetes writes them (seconds precision).
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}
