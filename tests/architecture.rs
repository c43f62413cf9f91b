//! Checks on the source tree itself: rules of the architecture that a
//! compiler cannot enforce.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The non-test part of a source file: everything before its
/// `#[cfg(test)]` module (test modules sit at the end of a file here), and
/// nothing of a file that is itself a test module (`…/tests.rs`).
fn production_code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            (rel, production_code(&p))
        })
        .collect()
}

/// Network configuration goes through netlink and `/proc/sys`: no `ip`,
/// `sysctl`, `nft`, `tc` or shell subprocess anywhere in `src/`, and only
/// the few places that must start programs spawn processes at all.
#[test]
fn no_subprocess_for_network_configuration() {
    const TOOLS: [&str; 12] = [
        "ip", "sysctl", "nft", "iptables", "tc", "ethtool", "bridge", "modprobe", "sh", "/bin/sh",
        "bash", "/sbin/ip",
    ];
    // The lab executable itself (daemon, shim), container programs, and
    // agnhost's `/shell` endpoint, which runs the caller's command as the
    // real agnhost does.
    const MAY_SPAWN: [&str; 4] = [
        "src/sys/process.rs",
        "src/cli/up.rs",
        "src/shim/start.rs",
        "src/agnhost/netexec.rs",
    ];
    let mut problems = Vec::new();
    let files = src_files();
    assert!(files.len() > 20, "source tree not found");
    for (rel, code) in &files {
        for (n, line) in code.lines().enumerate() {
            for tool in TOOLS {
                if tool != "/bin/sh" || !rel.starts_with("src/agnhost/") {
                    let lit = format!("Command::new(\"{tool}\")");
                    if line.contains(&lit) {
                        problems.push(format!("{rel}:{}: runs `{tool}`", n + 1));
                    }
                }
            }
            if line.contains("Command::new(") && !MAY_SPAWN.contains(&rel.as_str()) {
                problems.push(format!("{rel}:{}: spawns a process", n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The top-level modules depend on each other in one direction only: the
/// module graph drawn from `crate::<module>` paths in non-test code, comments
/// left out, has no cycle. (Types two sides share live below both:
/// `wire`, `api` for the API's types, `model::images`, `print`.)
#[test]
fn no_module_cycles() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in src_files() {
        let top = rel
            .trim_start_matches("src/")
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let entry = deps.entry(top.clone()).or_default();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    entry.insert(name);
                }
            }
        }
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    assert!(deps.len() > 8, "module graph not found: {deps:?}");
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        if let Some(cycle) = visit(m, &deps, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

/// The error types of every `Result<…>` spelled in `code`: the last
/// top-level argument inside its angle brackets (`Result<T>` has none).
fn result_error_types(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("Result<") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "Result<".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `IoResult<`, `MyResult<`: another type.
        }
        let (mut depth, mut last_comma, mut end) = (1usize, None, None);
        for (j, c) in rest.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                ',' if depth == 1 => last_comma = Some(j),
                _ => {}
            }
        }
        if let (Some(comma), Some(end)) = (last_comma, end) {
            out.push(rest[comma + 1..end].trim().to_string());
        }
    }
    out
}

/// Errors are typed (thiserror) in library code: no `Result<_, String>`
/// outside the CLI edge (`src/cli/`, `src/main.rs`).
#[test]
fn no_string_errors_in_library_code() {
    let mut problems = Vec::new();
    let files = src_files();
    assert!(files.len() > 20, "source tree not found");
    for (rel, code) in &files {
        if rel.starts_with("src/cli/") || rel == "src/main.rs" {
            continue;
        }
        let n = result_error_types(code)
            .iter()
            .filter(|e| *e == "String" || *e == "std::string::String")
            .count();
        if n > 0 {
            problems.push(format!(
                "{rel}: {n} `Result<_, String>`: return a thiserror type that names what failed"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn result_error_types_reads_nested_generics() {
    let code = "fn a() -> Result<HashMap<String, String>, SpdyError> {}\n\
                fn b() -> Result<(String, u8),\n    String> {}\n\
                fn c() -> io::Result<String> {}\n\
                fn d() -> IoResult<u8, String> {}\n\
                fn e() -> Result<Vec<Result<u8, String>>, E> {}";
    assert_eq!(
        result_error_types(code),
        ["SpdyError", "String", "E", "String"]
    );
}

/// The VM has no network: every package `scripts/provision --runtime`
/// installs (a `[command]=package` entry, less the C linker) must already be
/// in the box `scripts/vagrant-box` builds, or provisioning fails offline.
#[test]
fn the_vm_box_carries_what_provision_installs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let provision = std::fs::read_to_string(root.join("scripts/provision")).unwrap();
    let vagrant_box = std::fs::read_to_string(root.join("scripts/vagrant-box")).unwrap();
    let start = vagrant_box.find("BOX_PACKAGES=(").expect("BOX_PACKAGES");
    let end = start
        + vagrant_box[start..]
            .find("\n)")
            .expect("end of BOX_PACKAGES");
    let in_box: Vec<&str> = vagrant_box[start..end].split_whitespace().collect();
    let cmds_start = provision.find("declare -A CMDS=(").expect("CMDS");
    let cmds_end = cmds_start + provision[cmds_start..].find("\n)").expect("end of CMDS");
    let mut wanted = Vec::new();
    for line in provision[cmds_start..cmds_end].lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[')
            && let Some((cmd, pkg)) = rest.split_once("]=")
            && cmd != "cc"
        {
            wanted.push(pkg.trim().to_string());
        }
    }
    assert!(
        wanted.len() > 8,
        "provision's packages not found: {wanted:?}"
    );
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|p| !in_box.contains(&p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "scripts/provision --runtime installs {missing:?}, which the offline VM box lacks: add them to BOX_PACKAGES in scripts/vagrant-box"
    );
}

/// One API (issue 11, item 7): the daemon serves the Kubernetes API's
/// router and nothing else — on HTTPS, on the admin socket and (read-only)
/// on the DNS pods' socket — and the CLI and the DNS pods are its clients.
/// No private `/v1/...` route or client call comes back, and no second
/// router is built in the daemon.
#[test]
fn one_api_no_private_routes() {
    let mut private = Vec::new();
    let mut routers = Vec::new();
    for (path, _) in src_files() {
        // The whole file, tests included: a test of a private route is one.
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("\"/v1/") || line.contains("http://lab/v1/") {
                private.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
            if path.starts_with("src/daemon/")
                && (line.contains("Router::new()") || line.contains("axum::serve("))
                && !path.starts_with("src/daemon/kube/mod.rs")
            {
                routers.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        private.is_empty(),
        "private /v1 API paths (use the Kubernetes paths or /apis/lab.dev/v1):\n{}",
        private.join("\n")
    );
    assert!(
        routers.is_empty(),
        "a second router in the daemon (serve kube::router on every listener):\n{}",
        routers.join("\n")
    );
    // The three listeners serve that one router.
    let runtime = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon/runtime.rs"),
    )
    .unwrap();
    assert!(
        runtime.contains("kube::router("),
        "runtime.rs builds no kube::router"
    );
    assert!(
        runtime.contains("kube::read_only(app)"),
        "the read-only socket does not serve the same router"
    );
}
