//! The printers against kubectl's own output.

use super::*;
use serde_json::{Value, json};

/// 2024-01-01T00:10:00Z
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_067_800)
}

fn obj(kind: Kind, v: Value) -> Object {
    Object::from_json(kind, v).expect("fixture parses")
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).expect("pod fixture parses")
}

fn render(objects: &[Object], opts: TableOpts) -> String {
    let refs: Vec<&Object> = objects.iter().collect();
    table(&refs, &opts, now())
}

fn running_pod(name: &str, created: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                      "labels": {"app": "client"},
                      "annotations": {"lab.dev/netns": format!("lab-{name}")}},
        "spec": {"nodeName": "lab-node", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                       "image": "busybox", "imageID": "",
                       "state": {"running": {"startedAt": created}}}]}
    })
}

fn restarted_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "backend-7d4b9c-x2x4p", "namespace": "apps",
                      "creationTimestamp": "2023-12-31T22:00:00Z"},
        "spec": {"containers": [{"name": "web", "image": "agnhost"}, {"name": "side", "image": "busybox"}]},
        "status": {"phase": "Running",
                   "containerStatuses": [
                       {"name": "web", "ready": true, "restartCount": 3, "image": "agnhost", "imageID": "",
                        "state": {"running": {"startedAt": "2024-01-01T00:09:48Z"}},
                        "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                            "startedAt": "2024-01-01T00:01:00Z", "finishedAt": "2024-01-01T00:09:48Z"}}},
                       {"name": "side", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
                        "state": {"running": {"startedAt": "2023-12-31T22:00:01Z"}}}]}
    })
}

// --- human_age ---------------------------------------------------------

#[test]
fn human_age_matches_apimachinery() {
    let s = |secs: u64| Duration::from_secs(secs);
    let ms = |m: u64| Duration::from_millis(m);
    const M: u64 = 60;
    const H: u64 = 3600;
    const D: u64 = 24 * H;
    const Y: u64 = 365 * D;
    // duration_test.go TestHumanDuration
    let cases = [
        (s(1), "1s"),
        (s(70), "70s"),
        (s(190), "3m10s"),
        (s(70 * M), "70m"),
        (s(47 * H), "47h"),
        (s(49 * H), "2d1h"),
        (s((8 * 24 + 2) * H), "8d"),
        (s(367 * D), "367d"),
        (s((365 * 2 * 24 + 25) * H), "2y1d"),
        (s((365 * 8 * 24 + 2) * H), "8y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_age(d), want, "{d:?}");
    }
    // TestHumanDurationBoundaries (non-negative cases)
    let boundaries = [
        (s(0), "0s"),
        (ms(999), "0s"),
        (ms(2 * M * 1000 - 1), "119s"),
        (s(2 * M), "2m"),
        (s(2 * M + 1), "2m1s"),
        (ms(10 * M * 1000 - 1), "9m59s"),
        (s(10 * M), "10m"),
        (s(10 * M + 1), "10m"),
        (ms(3 * H * 1000 - 1), "179m"),
        (s(3 * H), "3h"),
        (s(3 * H + M), "3h1m"),
        (ms(8 * H * 1000 - 1), "7h59m"),
        (s(8 * H), "8h"),
        (s(8 * H + 59 * M), "8h"),
        (ms(2 * D * 1000 - 1), "47h"),
        (s(2 * D), "2d"),
        (s(2 * D + H), "2d1h"),
        (ms(8 * D * 1000 - 1), "7d23h"),
        (s(8 * D), "8d"),
        (s(8 * D + 23 * H), "8d"),
        (ms(2 * Y * 1000 - 1), "729d"),
        (s(2 * Y), "2y"),
        (s(2 * Y + 23 * H), "2y"),
        (s(2 * Y + 23 * H + 59 * M), "2y"),
        (ms((2 * Y + D) * 1000 - 1), "2y"),
        (s(2 * Y + D), "2y1d"),
        (s(3 * Y), "3y"),
        (s(7 * Y), "7y"),
        (ms(8 * Y * 1000 - 1), "7y364d"),
        (s(8 * Y), "8y"),
        (s(8 * Y + 364 * D), "8y"),
        (s(9 * Y), "9y"),
    ];
    for (d, want) in boundaries {
        assert_eq!(human_age(d), want, "{d:?}");
    }
    // Negative durations (clock skew): the negative boundary cases.
    assert_eq!(human_duration_ns(-2_000_000_000), "<invalid>");
    assert_eq!(human_duration_ns(-2_000_000_000 + 1), "0s");
    assert_eq!(human_duration_ns(-1), "0s");
}

#[test]
fn age_of_future_and_missing_timestamps() {
    let objs = [
        obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "future", "creationTimestamp": "2024-01-01T00:10:05Z"}}),
        ),
        obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "skew", "creationTimestamp": "2024-01-01T00:10:01Z"}}),
        ),
        obj(Kind::ConfigMap, json!({"metadata": {"name": "unset"}})),
    ];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME     DATA   AGE\n\
         future   0      <invalid>\n\
         skew     0      0s\n\
         unset    0      <unknown>\n"
    );
}

// --- tabwriter ---------------------------------------------------------

#[test]
fn tabwriter_blocks_like_go() {
    // Column widths hold within a block of consecutive lines that have
    // the column; a line without a tab ends the block.
    let text = "Name:\tx\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tbusybox\n    Port:\t<none>\n";
    assert_eq!(
        tabwrite(text, 0, 2),
        "Name:       x\nNamespace:  default\nContainers:\n  c:\n    Image:  busybox\n    Port:   <none>\n"
    );
    // The cell after the last tab is never padded; min width applies.
    assert_eq!(
        tabwrite("a\tb\tc\nddd\te\tf\n", 6, 3),
        "a     b     c\nddd   e     f\n"
    );
    // Nested columns: the second column's block is only the lines having it.
    assert_eq!(
        tabwrite("Port:\t<unset>\t80/TCP\nTargetPort:\t8080/TCP\n", 0, 2),
        "Port:        <unset>  80/TCP\nTargetPort:  8080/TCP\n"
    );
    // Widths count characters, not bytes.
    assert_eq!(tabwrite("é\tx\nab\ty", 0, 1), "é  x\nab y");
}

// --- pods ----------------------------------------------------------------

#[test]
fn pods_table() {
    let objs = [
        obj(Kind::Pod, restarted_pod()),
        obj(
            Kind::Pod,
            running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
        ),
    ];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME                   READY   STATUS    RESTARTS      AGE\n\
         backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m\n\
         client                 1/1     Running   0             5m\n"
    );
}

#[test]
fn pods_table_wide_has_lab_netns_column() {
    let objs = [
        obj(
            Kind::Pod,
            running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
        ),
        obj(Kind::Pod, restarted_pod()),
    ];
    let opts = TableOpts {
        wide: true,
        ..Default::default()
    };
    assert_eq!(
        render(&objs, opts),
        "NAME                   READY   STATUS    RESTARTS      AGE    IP           NODE       NOMINATED NODE   READINESS GATES   NETNS\n\
         client                 1/1     Running   0             5m     10.244.0.7   lab-node   <none>           <none>            lab-client\n\
         backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m   <none>       <none>     <none>           <none>            <none>\n"
    );
}

#[test]
fn pods_all_namespaces_kind_labels_and_no_headers() {
    let objs = [
        obj(Kind::Pod, restarted_pod()),
        obj(
            Kind::Pod,
            running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
        ),
    ];
    let opts = TableOpts {
        all_namespaces: true,
        show_kind: true,
        show_labels: true,
        ..Default::default()
    };
    assert_eq!(
        render(&objs, opts),
        "NAMESPACE   NAME                       READY   STATUS    RESTARTS      AGE    LABELS\n\
         apps        pod/backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m   <none>\n\
         default     pod/client                 1/1     Running   0             5m     app=client\n"
    );
    let opts = TableOpts {
        no_headers: true,
        ..Default::default()
    };
    assert_eq!(
        render(&objs, opts),
        "backend-7d4b9c-x2x4p   1/2   Running   3 (12s ago)   130m\n\
         client                 1/1   Running   0             5m\n"
    );
}

fn status_of(status: Value) -> String {
    let mut v = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
    });
    v["status"] = status;
    pod_status_reason(&pod(v))
}

#[test]
fn pod_status_reasons() {
    let cs = |state: Value| {
        json!({"phase": "Pending", "containerStatuses": [
        {"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": state}]})
    };
    assert_eq!(
        status_of(cs(json!({"waiting": {"reason": "ContainerCreating"}}))),
        "ContainerCreating"
    );
    assert_eq!(
        status_of(cs(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
        "CrashLoopBackOff"
    );
    assert_eq!(
        status_of(cs(
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
        )),
        "Completed"
    );
    assert_eq!(
        status_of(cs(
            json!({"terminated": {"exitCode": 1, "reason": "Error"}})
        )),
        "Error"
    );
    assert_eq!(
        status_of(cs(json!({"terminated": {"exitCode": 2}}))),
        "ExitCode:2"
    );
    assert_eq!(
        status_of(cs(json!({"terminated": {"exitCode": 137, "signal": 9}}))),
        "Signal:9"
    );
    assert_eq!(status_of(json!({"phase": "Pending"})), "Pending");
    assert_eq!(status_of(json!({"podIP": "10.244.0.9"})), "Pending");
    assert_eq!(
        status_of(json!({"phase": "Failed", "reason": "Evicted"})),
        "Evicted"
    );
    // No status at all: not looked at yet.
    assert_eq!(
        pod_status_reason(&pod(json!({"metadata": {"name": "p"}}))),
        "Pending"
    );
    // Running but not ready yet.
    assert_eq!(status_of(cs(json!({"running": {}}))).as_str(), "Pending");
}

#[test]
fn pod_status_completed_with_running_sibling() {
    let v = |ready_condition: bool| {
        json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready_condition {"True"} else {"False"}}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"running": {}}}]}
        })
    };
    assert_eq!(pod_status_reason(&pod(v(true))), "Running");
    assert_eq!(pod_status_reason(&pod(v(false))), "NotReady");
}

#[test]
fn pod_status_terminating_and_init() {
    let mut p = running_pod("x", "2024-01-01T00:00:00Z", "10.244.0.9");
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
    assert_eq!(pod_status_reason(&pod(p.clone())), "Terminating");
    // A finished pod being deleted keeps its phase.
    p["status"]["phase"] = json!("Succeeded");
    p["status"]["containerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    assert_eq!(pod_status_reason(&pod(p)), "Completed");

    let init = |state: Value| {
        pod(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "ready": false, "restartCount": 2, "image": "", "imageID": "", "state": state},
                    {"name": "i2", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"waiting": {"reason": "PodInitializing"}}}],
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}
        }))
    };
    assert_eq!(pod_status_reason(&init(json!({"running": {}}))), "Init:0/2");
    assert_eq!(
        pod_status_reason(&init(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
        "Init:CrashLoopBackOff"
    );
    assert_eq!(
        pod_status_reason(&init(json!({"terminated": {"exitCode": 3}}))),
        "Init:ExitCode:3"
    );
    assert_eq!(
        pod_status_reason(&init(json!({"terminated": {"exitCode": 0}}))),
        "Init:1/2"
    );
    // Restarts of init containers count while initializing.
    let s = pod_summary(&init(json!({"running": {}})));
    assert_eq!((s.ready, s.total, s.restarts), (0, 1, 2));
}

// --- services --------------------------------------------------------------

fn services() -> Vec<Object> {
    vec![
        obj(
            Kind::Service,
            json!({
                "metadata": {"name": "backend-service", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                         "selector": {"app": "backend", "tier": "web"},
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}
            }),
        ),
        obj(
            Kind::Service,
            json!({
                "metadata": {"name": "db", "namespace": "default", "creationTimestamp": "2023-12-29T00:10:00Z"},
                "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"},
                         "ports": [{"port": 5432}]}
            }),
        ),
        obj(
            Kind::Service,
            json!({
                "metadata": {"name": "ext", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}
            }),
        ),
    ]
}

#[test]
fn services_table() {
    assert_eq!(
        render(&services(), TableOpts::default()),
        "NAME              TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)         AGE\n\
         backend-service   ClusterIP      10.96.0.20   <none>        80/TCP,53/UDP   45s\n\
         db                ClusterIP      None         <none>        5432/TCP        3d\n\
         ext               ExternalName   <none>       example.com   <none>          10m\n"
    );
    let opts = TableOpts {
        wide: true,
        show_kind: true,
        ..Default::default()
    };
    assert_eq!(
        render(&services(), opts),
        "NAME                      TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)         AGE   SELECTOR\n\
         service/backend-service   ClusterIP      10.96.0.20   <none>        80/TCP,53/UDP   45s   app=backend,tier=web\n\
         service/db                ClusterIP      None         <none>        5432/TCP        3d    app=db\n\
         service/ext               ExternalName   <none>       example.com   <none>          10m   <none>\n"
    );
}

// --- endpoints and slices --------------------------------------------------

fn endpoints(n: usize) -> Value {
    let addrs: Vec<Value> = (0..n)
        .map(|i| json!({"ip": format!("10.244.0.{}", i + 5)}))
        .collect();
    json!({
        "metadata": {"name": "backend-service", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
        "subsets": [{"addresses": addrs, "notReadyAddresses": [{"ip": "10.244.0.99"}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    })
}

#[test]
fn endpoints_table_truncates_after_three() {
    let objs = [
        obj(Kind::Endpoints, endpoints(2)),
        obj(Kind::Endpoints, endpoints(4)),
        obj(
            Kind::Endpoints,
            json!({"metadata": {"name": "empty", "creationTimestamp": "2024-01-01T00:09:15Z"}}),
        ),
    ];
    // NAME is 15 wide (+3); ENDPOINTS is padded to its widest cell + 3.
    let rows = [
        ["NAME", "ENDPOINTS", "AGE"],
        ["backend-service", "10.244.0.5:8080,10.244.0.6:8080", "45s"],
        [
            "backend-service",
            "10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080 + 1 more...",
            "45s",
        ],
        ["empty", "<none>", "45s"],
    ];
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap() + 3;
    let manual: String = rows
        .iter()
        .map(|r| format!("{:<18}{:<w1$}{}\n", r[0], r[1], r[2]))
        .collect();
    assert_eq!(render(&objs, TableOpts::default()), manual);
    assert_eq!(
        render(
            &objs,
            TableOpts {
                wide: true,
                ..Default::default()
            }
        ),
        manual
    );
    // Multiple subsets and ports count towards "more".
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "x"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"name": "b", "port": 81}]},
            {"addresses": [{"ip": "fd00::1"}]}
        ]
    }))
    .unwrap();
    assert_eq!(
        format_endpoints(&ep, None),
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:81 + 2 more..."
    );
    assert_eq!(
        format_endpoints(&ep, Some("b")),
        "10.0.0.1:81,10.0.0.2:81,fd00::1"
    );
}

#[test]
fn endpointslices_table() {
    let objs = [
        obj(
            Kind::EndpointSlice,
            json!({
                "metadata": {"name": "backend-service-abc12", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.0.6"]}, {"addresses": ["10.244.0.7"]}, {"addresses": ["10.244.0.8"]}]
            }),
        ),
        obj(
            Kind::EndpointSlice,
            json!({
                "metadata": {"name": "empty-xyz", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                "addressType": "IPv4"
            }),
        ),
    ];
    assert_eq!(
        render(
            &objs,
            TableOpts {
                show_kind: true,
                ..Default::default()
            }
        ),
        "NAME                                                   ADDRESSTYPE   PORTS     ENDPOINTS                                      AGE\n\
         endpointslice.discovery.k8s.io/backend-service-abc12   IPv4          8080      10.244.0.5,10.244.0.6,10.244.0.7 + 1 more...   45s\n\
         endpointslice.discovery.k8s.io/empty-xyz               IPv4          <unset>   <unset>                                        45s\n"
    );
}

// --- deployments and replicasets -------------------------------------------

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backend", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z",
                      "labels": {"app": "backend"}},
        "spec": {"replicas": 3,
                 "selector": {"matchLabels": {"app": "backend"},
                              "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                 "template": {"metadata": {"labels": {"app": "backend", "env": "prod"}},
                              "spec": {"containers": [
                                  {"name": "web", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                   "args": ["netexec", "--http-port=8080"],
                                   "ports": [{"containerPort": 8080}]},
                                  {"name": "log", "image": "busybox", "command": ["sh", "-c", "tail -f /dev/null"]}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1}
    })
}

fn replicaset(name: &str, hash: &str, image: &str, replicas: i32, revision: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z",
                      "annotations": {"deployment.kubernetes.io/revision": revision},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend",
                                           "uid": "u1", "controller": true}]},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app": "backend", "pod-template-hash": hash}},
                 "template": {"metadata": {"labels": {"app": "backend", "env": "prod", "pod-template-hash": hash}},
                              "spec": {"containers": [
                                  {"name": "web", "image": image,
                                   "args": ["netexec", "--http-port=8080"],
                                   "ports": [{"containerPort": 8080}]},
                                  {"name": "log", "image": "busybox", "command": ["sh", "-c", "tail -f /dev/null"]}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas.min(2)}
    })
}

#[test]
fn deployments_table() {
    let objs = [obj(Kind::Deployment, deployment())];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME      READY   UP-TO-DATE   AVAILABLE   AGE\n\
         backend   2/3     3            2           10m\n"
    );
    assert_eq!(
        render(
            &objs,
            TableOpts {
                wide: true,
                show_kind: true,
                ..Default::default()
            }
        ),
        "NAME                      READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES                                                 SELECTOR\n\
         deployment.apps/backend   2/3     3            2           10m   web,log      registry.k8s.io/e2e-test-images/agnhost:2.53,busybox   app=backend,env in (dev,prod)\n"
    );
}

#[test]
fn replicasets_table() {
    let img = "registry.k8s.io/e2e-test-images/agnhost:2.53";
    let objs = [obj(
        Kind::ReplicaSet,
        replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2"),
    )];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME             DESIRED   CURRENT   READY   AGE\n\
         backend-7d4b9c   3         3         2       10m\n"
    );
    assert_eq!(
        render(
            &objs,
            TableOpts {
                wide: true,
                ..Default::default()
            }
        ),
        "NAME             DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES                                                 SELECTOR\n\
         backend-7d4b9c   3         3         2       10m   web,log      registry.k8s.io/e2e-test-images/agnhost:2.53,busybox   app=backend,pod-template-hash=7d4b9c\n"
    );
}

// --- statefulsets ----------------------------------------------------------------

fn statefulset() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "mariadb:11", "command": ["mariadbd"]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        },
        "status": {"replicas": 3, "readyReplicas": 2, "currentReplicas": 3, "updatedReplicas": 3}
    })
}

#[test]
fn statefulsets_table_and_describe() {
    let objs = [obj(Kind::StatefulSet, statefulset())];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME   READY   AGE\n\
         db     2/3     10m\n"
    );
    assert_eq!(
        render(
            &objs,
            TableOpts {
                wide: true,
                show_kind: true,
                ..Default::default()
            }
        ),
        "NAME                  READY   AGE   CONTAINERS   IMAGES\n\
         statefulset.apps/db   2/3     10m   db           mariadb:11\n"
    );
    let out = describe(&objs[0], &Related::default(), now());
    for line in [
        "Name:               db\n",
        "Selector:           app=db\n",
        "Replicas:           3 desired | 3 total\n",
        "Update Strategy:    RollingUpdate\n  Partition:        0\n",
        "Pods Status:        2 Running / 1 Waiting / 0 Succeeded / 0 Failed\n",
        "Volume Claims:\n  Name:          data\n  StorageClass:  \n  Labels:        <none>\n  Annotations:   <none>\n  Capacity:      1Gi\n  Access Modes:  [ReadWriteOnce]\n",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
}

// --- configmaps and namespaces -------------------------------------------------

#[test]
fn configmaps_and_namespaces_tables() {
    let objs = [
        obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "default",
            "creationTimestamp": "2023-12-31T21:10:00Z"}, "data": {"ca.crt": "x"}}),
        ),
        obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "web", "namespace": "default",
            "creationTimestamp": "2024-01-01T00:04:30Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}}),
        ),
    ];
    assert_eq!(
        render(
            &objs,
            TableOpts {
                all_namespaces: true,
                ..Default::default()
            }
        ),
        "NAMESPACE   NAME               DATA   AGE\n\
         default     kube-root-ca.crt   1      3h\n\
         default     web                3      5m30s\n"
    );
    let objs = [
        obj(
            Kind::Namespace,
            json!({"metadata": {"name": "default", "creationTimestamp": "2023-12-29T21:10:00Z"},
            "status": {"phase": "Active"}}),
        ),
        obj(
            Kind::Namespace,
            json!({"metadata": {"name": "kube-system", "creationTimestamp": "2023-12-29T21:10:00Z"}}),
        ),
        obj(
            Kind::Namespace,
            json!({"metadata": {"name": "old", "creationTimestamp": "2023-12-29T21:10:00Z",
            "deletionTimestamp": "2024-01-01T00:09:00Z"}}),
        ),
    ];
    // -A adds no NAMESPACE column for cluster-scoped kinds.
    assert_eq!(
        render(
            &objs,
            TableOpts {
                all_namespaces: true,
                ..Default::default()
            }
        ),
        "NAME          STATUS        AGE\n\
         default       Active        2d3h\n\
         kube-system   Active        2d3h\n\
         old           Terminating   2d3h\n"
    );
}

#[test]
fn empty_table_and_names() {
    assert_eq!(table(&[], &TableOpts::default(), now()), "");
    let objs = [
        obj(
            Kind::Pod,
            running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
        ),
        obj(Kind::Pod, restarted_pod()),
    ];
    let refs: Vec<&Object> = objs.iter().collect();
    assert_eq!(names(&refs), "pod/client\npod/backend-7d4b9c-x2x4p\n");
    let d = obj(Kind::Deployment, deployment());
    assert_eq!(names(&[&d]), "deployment.apps/backend\n");
    let s = &services()[0];
    assert_eq!(names(&[s]), "service/backend-service\n");
}

// --- describe ---------------------------------------------------------------

#[test]
fn describe_service_layout() {
    let svc = &services()[0];
    let mut counters = BTreeMap::new();
    counters.insert("flows_created".to_string(), 12u64);
    counters.insert("rejected_no_endpoints".to_string(), 0u64);
    let related = Related {
        endpoints: Some(serde_json::from_value(endpoints(4)).unwrap()),
        counters: Some(counters),
        ..Default::default()
    };
    let out = describe(svc, &related, now());
    assert_eq!(
        out,
        "Name:                     backend-service\n\
         Namespace:                default\n\
         Labels:                   <none>\n\
         Annotations:              <none>\n\
         Selector:                 app=backend,tier=web\n\
         Type:                     ClusterIP\n\
         IP Family Policy:         SingleStack\n\
         IP Families:              IPv4\n\
         IP:                       10.96.0.20\n\
         IPs:                      10.96.0.20\n\
         Port:                     http  80/TCP\n\
         TargetPort:               8080/TCP\n\
         Endpoints:                10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080 + 1 more...\n\
         Port:                     dns  53/UDP\n\
         TargetPort:               53/UDP\n\
         Endpoints:                \n\
         Session Affinity:         None\n\
         Internal Traffic Policy:  Cluster\n\
         Counters:\n\
         \x20 flows_created:          12\n\
         \x20 rejected_no_endpoints:  0\n\
         Events:                   <none>\n"
    );
    // Without endpoints, or with events.
    let related = Related {
        events: vec!["Normal\tCreated\t45s\tlab\tallocated 10.96.0.20".into()],
        ..Default::default()
    };
    let out = describe(svc, &related, now());
    assert!(out.contains("Endpoints:                <none>\n"), "{out}");
    assert!(
        out.ends_with(
            "Events:\n\
             \x20 Type    Reason   Age   From  Message\n\
             \x20 ----    ------   ----  ----  -------\n\
             \x20 Normal  Created  45s   lab   allocated 10.96.0.20\n"
        ),
        "{out}"
    );
}

#[test]
fn describe_events_table_matches_kubectl() {
    let mut d = Desc::default();
    d.w(0, "Name:\tx\n");
    describe_events(
        &mut d,
        &["Normal\tScheduled\t5m\tdefault-scheduler\tSuccessfully assigned default/x".into()],
    );
    assert_eq!(
        d.finish(),
        "Name:  x\n\
         Events:\n\
         \x20 Type    Reason     Age   From               Message\n\
         \x20 ----    ------     ----  ----               -------\n\
         \x20 Normal  Scheduled  5m    default-scheduler  Successfully assigned default/x\n"
    );
}

#[test]
fn describe_pod_layout() {
    let mut v = restarted_pod();
    v["metadata"]["labels"] = json!({"app": "backend", "pod-template-hash": "7d4b9c"});
    v["metadata"]["annotations"] = json!({"lab.dev/netns": "lab-backend"});
    v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "backend-7d4b9c", "uid": "u", "controller": true}]);
    v["spec"]["nodeName"] = json!("lab-node");
    v["spec"]["containers"][0]["args"] = json!(["netexec", "--http-port=8080"]);
    v["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080, "protocol": "TCP"}]);
    v["spec"]["containers"][0]["env"] = json!([
        {"name": "MODE", "value": "fast"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
    v["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]);
    v["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": 8080}});
    v["spec"]["volumes"] =
        json!([{"name": "cfg", "configMap": {"name": "web"}}, {"name": "scratch", "emptyDir": {}}]);
    v["status"]["hostIP"] = json!("10.0.0.1");
    v["status"]["podIP"] = json!("10.244.0.12");
    v["status"]["podIPs"] = json!([{"ip": "10.244.0.12"}]);
    v["status"]["startTime"] = json!("2023-12-31T22:00:00Z");
    v["status"]["conditions"] =
        json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}]);
    let p = obj(Kind::Pod, v);
    let out = describe(&p, &Related::default(), now());
    let expected_head = "Name:         backend-7d4b9c-x2x4p\n\
         Namespace:    apps\n\
         Priority:     0\n\
         Node:         lab-node/10.0.0.1\n\
         Start Time:   Sun, 31 Dec 2023 22:00:00 +0000\n\
         Labels:       app=backend\n\
         \x20             pod-template-hash=7d4b9c\n\
         Annotations:  lab.dev/netns: lab-backend\n\
         Status:       Running\n\
         IP:           10.244.0.12\n\
         IPs:\n\
         \x20 IP:           10.244.0.12\n\
         Controlled By:  ReplicaSet/backend-7d4b9c\n\
         Containers:\n\
         \x20 web:\n\
         \x20   Container ID:  \n\
         \x20   Image:         agnhost\n\
         \x20   Image ID:      \n\
         \x20   Port:          8080/TCP\n\
         \x20   Host Port:     0/TCP\n\
         \x20   Args:\n\
         \x20     netexec\n\
         \x20     --http-port=8080\n\
         \x20   State:          Running\n\
         \x20     Started:      Mon, 01 Jan 2024 00:09:48 +0000\n\
         \x20   Last State:     Terminated\n\
         \x20     Reason:       Error\n\
         \x20     Exit Code:    137\n\
         \x20     Started:      Mon, 01 Jan 2024 00:01:00 +0000\n\
         \x20     Finished:     Mon, 01 Jan 2024 00:09:48 +0000\n\
         \x20   Ready:          True\n\
         \x20   Restart Count:  3\n\
         \x20   Readiness:      http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n\
         \x20   Environment:\n\
         \x20     MODE:      fast\n\
         \x20     POD_NAME:  backend-7d4b9c-x2x4p (v1:metadata.name)\n\
         \x20   Mounts:\n\
         \x20     /etc/cfg from cfg (ro)\n\
         \x20 side:\n\
         \x20   Container ID:   \n\
         \x20   Image:          busybox\n";
    assert!(out.starts_with(expected_head), "{out}");
    let expected_tail = "Conditions:\n\
         \x20 Type          Status\n\
         \x20 Initialized   True \n\
         \x20 Ready         False \n\
         Volumes:\n\
         \x20 cfg:\n\
         \x20   Type:      ConfigMap (a volume populated by a ConfigMap)\n\
         \x20   Name:      web\n\
         \x20   Optional:  false\n\
         \x20 scratch:\n\
         \x20   Type:        EmptyDir (a temporary directory that shares a pod's lifetime)\n\
         \x20   Medium:      \n\
         \x20   SizeLimit:   <unset>\n\
         QoS Class:       BestEffort\n\
         Node-Selectors:  <none>\n\
         Tolerations:     <none>\n\
         Events:          <none>\n";
    assert!(out.ends_with(expected_tail), "{out}");
}

#[test]
fn describe_terminating_pod() {
    let mut v = running_pod("x", "2024-01-01T00:00:00Z", "10.244.0.9");
    v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:50Z");
    v["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let out = describe(&obj(Kind::Pod, v), &Related::default(), now());
    assert!(
        out.contains("Status:                    Terminating (lasts 10s)\n"),
        "{out}"
    );
    assert!(out.contains("Termination Grace Period:  30s\n"), "{out}");
}

#[test]
fn describe_deployment_layout() {
    let img = "registry.k8s.io/e2e-test-images/agnhost:2.53";
    let rss: Vec<ReplicaSet> = vec![
        serde_json::from_value(replicaset("backend-old", "aaa", "agnhost:old", 0, "1")).unwrap(),
        serde_json::from_value(replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2")).unwrap(),
    ];
    let related = Related {
        replicasets: rss,
        ..Default::default()
    };
    let out = describe(&obj(Kind::Deployment, deployment()), &related, now());
    let expected = "Name:                   backend\n\
         Namespace:              default\n\
         CreationTimestamp:      Mon, 01 Jan 2024 00:00:00 +0000\n\
         Labels:                 app=backend\n\
         Annotations:            <none>\n\
         Selector:               app=backend,env in (dev,prod)\n\
         Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable\n\
         StrategyType:           RollingUpdate\n\
         MinReadySeconds:        0\n\
         RollingUpdateStrategy:  25% max unavailable, 25% max surge\n\
         Pod Template:\n\
         \x20 Labels:  app=backend\n\
         \x20          env=prod\n\
         \x20 Containers:\n\
         \x20  web:\n\
         \x20   Image:      registry.k8s.io/e2e-test-images/agnhost:2.53\n\
         \x20   Port:       8080/TCP\n\
         \x20   Host Port:  0/TCP\n\
         \x20   Args:\n\
         \x20     netexec\n\
         \x20     --http-port=8080\n\
         \x20   Environment:  <none>\n\
         \x20   Mounts:       <none>\n\
         \x20  log:\n\
         \x20   Image:      busybox\n\
         \x20   Port:       <none>\n\
         \x20   Host Port:  <none>\n\
         \x20   Command:\n\
         \x20     sh\n\
         \x20     -c\n\
         \x20     tail -f /dev/null\n\
         \x20   Environment:   <none>\n\
         \x20   Mounts:        <none>\n\
         \x20 Volumes:         <none>\n\
         \x20 Node-Selectors:  <none>\n\
         \x20 Tolerations:     <none>\n\
         OldReplicaSets:    backend-old (0/0 replicas created)\n\
         NewReplicaSet:     backend-7d4b9c (3/3 replicas created)\n\
         Events:            <none>\n";
    assert_eq!(out, expected);
}

#[test]
fn describe_replicaset_endpoints_slice_configmap_namespace() {
    let img = "agnhost";
    let rs = obj(
        Kind::ReplicaSet,
        replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2"),
    );
    let out = describe(&rs, &Related::default(), now());
    assert!(out.starts_with("Name:           backend-7d4b9c\nNamespace:      default\nSelector:       app=backend,pod-template-hash=7d4b9c\n"), "{out}");
    assert!(
        out.contains("Controlled By:  Deployment/backend\n"),
        "{out}"
    );
    assert!(
        out.contains("Replicas:       3 current / 3 desired\n"),
        "{out}"
    );
    assert!(
        out.contains("Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 0 Failed\n"),
        "{out}"
    );

    let ep = obj(Kind::Endpoints, endpoints(2));
    assert_eq!(
        describe(&ep, &Related::default(), now()),
        "Name:         backend-service\n\
         Namespace:    default\n\
         Labels:       <none>\n\
         Annotations:  <none>\n\
         Subsets:\n\
         \x20 Addresses:          10.244.0.5,10.244.0.6\n\
         \x20 NotReadyAddresses:  10.244.0.99\n\
         \x20 Ports:\n\
         \x20   Name  Port  Protocol\n\
         \x20   ----  ----  --------\n\
         \x20   http  8080  TCP\n\
         \n\
         Events:  <none>\n"
    );

    let slice = obj(
        Kind::EndpointSlice,
        json!({
            "metadata": {"name": "backend-service-abc12", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": "backend-service"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": "backend-x"}, "nodeName": "lab-node"}]
        }),
    );
    assert_eq!(
        describe(&slice, &Related::default(), now()),
        "Name:         backend-service-abc12\n\
         Namespace:    default\n\
         Labels:       kubernetes.io/service-name=backend-service\n\
         Annotations:  <none>\n\
         AddressType:  IPv4\n\
         Ports:\n\
         \x20 Name  Port  Protocol\n\
         \x20 ----  ----  --------\n\
         \x20 http  8080  TCP\n\
         Endpoints:\n\
         \x20 - Addresses:  10.244.0.5\n\
         \x20   Conditions:\n\
         \x20     Ready:    true\n\
         \x20   Hostname:   <unset>\n\
         \x20   TargetRef:  Pod/backend-x\n\
         \x20   NodeName:   lab-node\n\
         \x20   Zone:       <unset>\n\
         Events:         <none>\n"
    );

    let cm = obj(
        Kind::ConfigMap,
        json!({"metadata": {"name": "web", "namespace": "default"},
        "data": {"index.html": "hello", "z": "1"}}),
    );
    assert_eq!(
        describe(&cm, &Related::default(), now()),
        "Name:         web\n\
         Namespace:    default\n\
         Labels:       <none>\n\
         Annotations:  <none>\n\
         \n\
         Data\n\
         ====\n\
         index.html:\n\
         ----\n\
         hello\n\
         \n\
         z:\n\
         ----\n\
         1\n\
         \n\
         \n\
         BinaryData\n\
         ====\n\
         \n\
         Events:  <none>\n"
    );

    let ns = obj(
        Kind::Namespace,
        json!({"metadata": {"name": "default",
        "labels": {"kubernetes.io/metadata.name": "default"}}, "status": {"phase": "Active"}}),
    );
    assert_eq!(
        describe(&ns, &Related::default(), now()),
        "Name:         default\n\
         Labels:       kubernetes.io/metadata.name=default\n\
         Annotations:  <none>\n\
         Status:       Active\n\
         \n\
         No resource quota.\n\
         \n\
         No LimitRange resource.\n"
    );
}

#[test]
fn long_and_multiline_annotations_are_broken() {
    let long = "x".repeat(200);
    let cm = obj(
        Kind::ConfigMap,
        json!({"metadata": {"name": "c", "namespace": "d",
        "annotations": {"a": "short", "b": long, "c": "one\ntwo",
                        "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
    );
    let out = describe(&cm, &Related::default(), now());
    let shortened = format!("{}...", "x".repeat(138));
    assert!(
        out.contains(&format!("Annotations:  a: short\n              b:\n                {shortened}\n              c:\n                one\n                two\n")),
        "{out}"
    );
    assert!(!out.contains("last-applied"), "{out}");
}

#[test]
fn selectors_probes_tolerations_qos_and_load_balancers() {
    let sel: LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "z", "operator": "NotIn", "values": ["y", "x"]},
            {"key": "c", "operator": "Exists"},
            {"key": "d", "operator": "DoesNotExist"}]
    }))
    .unwrap();
    assert_eq!(selector_string(&sel).unwrap(), "a=1,b=2,c,!d,z notin (x,y)");
    assert_eq!(format_label_selector(&LabelSelector::default()), "<none>");
    let bad: LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "k", "operator": "Near"}]}))
            .unwrap();
    assert_eq!(format_label_selector(&bad), "<error>");

    let probe = |v: Value| describe_probe(&serde_json::from_value::<Probe>(v).unwrap());
    assert_eq!(
        probe(json!({"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 2})),
        "exec [cat /tmp/ready] delay=0s timeout=1s period=2s #success=1 #failure=3"
    );
    assert_eq!(
        probe(json!({"tcpSocket": {"port": "dns"}, "initialDelaySeconds": 5})),
        "tcp-socket :dns delay=5s timeout=1s period=10s #success=1 #failure=3"
    );

    let mut d = Desc::default();
    let tolerations: Vec<Toleration> = serde_json::from_value(json!([
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "dedicated", "operator": "Equal", "value": "lab", "effect": "NoSchedule"},
        {"operator": "Exists"}]))
    .unwrap();
    tolerations_multiline(&mut d, "Tolerations", &tolerations);
    assert_eq!(
        d.finish(),
        "Tolerations:  op=Exists\n\
         \x20             dedicated=lab:NoSchedule\n\
         \x20             node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n"
    );

    let qos = |resources: Value| {
        qos_class(
            &serde_json::from_value(json!({"containers": [{"name": "c", "resources": resources}]}))
                .unwrap(),
        )
    };
    assert_eq!(qos(json!({})), "BestEffort");
    assert_eq!(qos(json!({"requests": {"cpu": "100m"}})), "Burstable");
    assert_eq!(
        qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
        "Guaranteed"
    );
    assert_eq!(
        qos(
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
        ),
        "Burstable"
    );

    let lb: Service = serde_json::from_value(json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"ip": "203.0.113.9"}]}}
    }))
    .unwrap();
    assert_eq!(service_external_ip(&lb, false), "203.0.113.10,...");
    assert_eq!(service_external_ip(&lb, true), "203.0.113.10,203.0.113.9");
    assert_eq!(service_ports(&lb), "80:30080/TCP");
    let pending: Service = serde_json::from_value(
        json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}),
    )
    .unwrap();
    assert_eq!(service_external_ip(&pending, false), "<pending>");
}

#[test]
fn events_table_and_describe_lines_as_kubectl() {
    let ev = |name: &str, reason: &str, ty: &str, first: &str, last: &str, count: i32| {
        obj(
            Kind::Event,
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                                   "fieldPath": "spec.containers{app}"},
                "reason": reason, "message": format!("{reason} happened"), "type": ty,
                "source": {"component": "kubelet", "host": "lab-node"},
                "firstTimestamp": first, "lastTimestamp": last, "count": count}),
        )
    };
    let objects = [
        ev(
            "web.1",
            "BackOff",
            "Warning",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:09:00Z",
            5,
        ),
        ev(
            "web.2",
            "Started",
            "Normal",
            "2024-01-01T00:05:00Z",
            "2024-01-01T00:05:00Z",
            1,
        ),
    ];
    assert_eq!(
        render(&objects, TableOpts::default()),
        "LAST SEEN           TYPE      REASON    OBJECT    MESSAGE\n\
         60s (x5 over 10m)   Warning   BackOff   pod/web   BackOff happened\n\
         5m                  Normal    Started   pod/web   Started happened\n"
    );
    let wide = render(
        &objects,
        TableOpts {
            wide: true,
            ..Default::default()
        },
    );
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .ends_with("SUBOBJECT              SOURCE              FIRST SEEN   COUNT   NAME"),
        "{wide}"
    );
    assert!(
        wide.contains("spec.containers{app}   kubelet, lab-node   10m          5       web.1"),
        "{wide}"
    );
    let events: Vec<Event> = objects
        .iter()
        .map(|o| match o {
            Object::Event(e) => (**e).clone(),
            _ => unreachable!(),
        })
        .collect();
    // Oldest first, `From` without the host, as kubectl describe.
    assert_eq!(
        event_lines(&events, now()),
        [
            "Normal\tStarted\t5m\tkubelet\tStarted happened",
            "Warning\tBackOff\t60s (x5 over 10m)\tkubelet\tBackOff happened",
        ]
    );
}

// --- secrets and jobs ----------------------------------------------------------

fn job(name: &str, spec: Value, status: Value) -> Object {
    obj(
        Kind::Job,
        json!({"metadata": {"name": name, "namespace": "default",
            "creationTimestamp": "2024-01-01T00:05:00Z"},
        "spec": spec, "status": status}),
    )
}

#[test]
fn secrets_and_jobs_tables() {
    let objs = [
        obj(
            Kind::Secret,
            json!({"metadata": {"name": "db", "namespace": "default",
            "creationTimestamp": "2024-01-01T00:04:30Z"}, "type": "kubernetes.io/basic-auth",
            "data": {"username": "YXBw", "password": "cHc="}}),
        ),
        obj(
            Kind::Secret,
            json!({"metadata": {"name": "empty", "namespace": "default",
            "creationTimestamp": "2024-01-01T00:09:00Z"}, "type": "Opaque"}),
        ),
    ];
    assert_eq!(
        render(&objs, TableOpts::default()),
        "NAME    TYPE                       DATA   AGE\n\
         db      kubernetes.io/basic-auth   2      5m30s\n\
         empty   Opaque                     0      60s\n"
    );
    let template = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "curl", "image": "curlimages/curl"}]}});
    let selector = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}});
    let objs = [
        job(
            "done",
            json!({"completions": 3, "parallelism": 1, "template": template, "selector": selector}),
            json!({"succeeded": 3, "startTime": "2024-01-01T00:05:00Z",
                "completionTime": "2024-01-01T00:06:15Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"}]}),
        ),
        job(
            "queue",
            json!({"parallelism": 4, "template": template, "selector": selector}),
            json!({"active": 4, "startTime": "2024-01-01T00:08:00Z"}),
        ),
        job(
            "broken",
            json!({"completions": 1, "parallelism": 1, "template": template, "selector": selector}),
            json!({"failed": 2, "startTime": "2024-01-01T00:05:00Z",
                "conditions": [{"type": "FailureTarget", "status": "True"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
        ),
        job(
            "failing",
            json!({"completions": 1, "parallelism": 1, "template": template, "selector": selector}),
            json!({"failed": 1, "startTime": "2024-01-01T00:05:00Z",
                "conditions": [{"type": "FailureTarget", "status": "True"}]}),
        ),
    ];
    assert_eq!(
        render(
            &objs,
            TableOpts {
                wide: true,
                ..Default::default()
            }
        ),
        "NAME      STATUS          COMPLETIONS   DURATION   AGE   CONTAINERS   IMAGES            SELECTOR\n\
         done      Complete        3/3           75s        5m    curl         curlimages/curl   batch.kubernetes.io/controller-uid=u1\n\
         queue     Running         0/1 of 4      2m         5m    curl         curlimages/curl   batch.kubernetes.io/controller-uid=u1\n\
         broken    Failed          0/1           5m         5m    curl         curlimages/curl   batch.kubernetes.io/controller-uid=u1\n\
         failing   FailureTarget   0/1           5m         5m    curl         curlimages/curl   batch.kubernetes.io/controller-uid=u1\n"
    );
}

#[test]
fn describe_secret_prints_sizes_only() {
    let s = obj(
        Kind::Secret,
        json!({"metadata": {"name": "db", "namespace": "default", "labels": {"app": "db"}},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": "YXBw", "password": "czNjcjN0LXZhbHVl"}}),
    );
    let out = describe(&s, &Related::default(), now());
    assert!(!out.contains("s3cr3t"), "{out}");
    assert_eq!(
        out,
        "Name:         db\n\
         Namespace:    default\n\
         Labels:       app=db\n\
         Annotations:  <none>\n\
         \n\
         Type:  kubernetes.io/basic-auth\n\
         \n\
         Data\n\
         ====\n\
         password:  12 bytes\n\
         username:  3 bytes\n"
    );
}

fn node_fixture(name: &str, ready: &str, unschedulable: bool, labels: Value) -> Object {
    obj(
        Kind::Node,
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z", "labels": labels},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": unschedulable,
                "taints": if unschedulable { json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]) } else { json!(null) }},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "ok",
                    "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.3"}, {"type": "Hostname", "address": name}],
                "capacity": {"pods": "110"}, "allocatable": {"pods": "110"},
                "nodeInfo": {"kubeletVersion": "v1.32.0-lab", "kubeProxyVersion": "", "osImage": "lab",
                    "kernelVersion": "6.1.0", "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "lab://0.1.0", "machineID": "", "systemUUID": "", "bootID": ""}}}),
    )
}

#[test]
fn node_table_status_roles_and_wide_columns() {
    let nodes = [
        node_fixture(
            "n1",
            "True",
            false,
            json!({"node-role.kubernetes.io/control-plane": ""}),
        ),
        node_fixture(
            "n2",
            "False",
            true,
            json!({"kubernetes.io/role": "worker", "node-role.kubernetes.io/infra": ""}),
        ),
        node_fixture("n3", "Unknown", false, json!({})),
    ];
    let out = render(&nodes, TableOpts::default());
    assert_eq!(
        out,
        "NAME   STATUS                        ROLES           AGE   VERSION\n\
         n1     Ready                         control-plane   10m   v1.32.0-lab\n\
         n2     NotReady,SchedulingDisabled   infra,worker    10m   v1.32.0-lab\n\
         n3     NotReady                      <none>          10m   v1.32.0-lab\n"
    );
    let refs: Vec<&Object> = nodes.iter().collect();
    let mut ctx = RowCtx::default();
    ctx.node_pods.insert("n1".into(), 4);
    let wide = table_ctx(
        &refs,
        &TableOpts {
            wide: true,
            ..Default::default()
        },
        now(),
        &ctx,
    );
    let first = wide.lines().nth(1).unwrap();
    assert!(wide.starts_with("NAME   STATUS"), "{wide}");
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .ends_with("CONTAINER-RUNTIME   PODCIDR         PODS"),
        "{wide}"
    );
    assert!(
        first.contains("172.18.0.3    <none>        lab        6.1.0")
            && first.ends_with("10.244.1.0/24   4"),
        "{wide}"
    );
    assert!(wide.lines().nth(2).unwrap().ends_with(" 0"), "{wide}");
    let d = describe(&nodes[1], &Related::default(), now());
    assert!(d.contains("Roles:              infra,worker"), "{d}");
    assert!(
        d.contains("Taints:             node.kubernetes.io/unschedulable:NoSchedule"),
        "{d}"
    );
    assert!(d.contains("Unschedulable:      true"), "{d}");
    assert!(d.contains("PodCIDRs:"), "{d}");
    assert!(
        d.contains("Non-terminated Pods:          (0 in total)"),
        "{d}"
    );
}
