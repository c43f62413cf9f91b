//! The images built into lab: names the manifest model, the pod
//! preparation and the DNS server all use (kept here so that the model does
//! not depend on the DNS server).

/// The built-in image that runs `lab dns` (any tag): the cluster DNS pods.
pub const DNS_IMAGE: &str = "lab.dev/dns";

/// The images built into lab (run without a `command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinImage {
    /// `registry.k8s.io/e2e-test-images/agnhost`: `lab agnhost …`.
    Agnhost,
    /// `lab.dev/dns`: the cluster DNS server, `lab dns …`.
    Dns,
}

impl BuiltinImage {
    /// The `lab` subcommand the image runs.
    pub fn subcommand(self) -> &'static str {
        match self {
            BuiltinImage::Agnhost => "agnhost",
            BuiltinImage::Dns => "dns",
        }
    }
}

/// Which built-in image `image` names (any tag or digest), if any.
pub fn builtin_image(image: &str) -> Option<BuiltinImage> {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = repo
        .rsplit_once(':')
        .map_or(repo, |(r, tag)| if tag.contains('/') { repo } else { r });
    match repo {
        "registry.k8s.io/e2e-test-images/agnhost"
        | "k8s.gcr.io/e2e-test-images/agnhost"
        | "gcr.io/kubernetes-e2e-test-images/agnhost" => Some(BuiltinImage::Agnhost),
        DNS_IMAGE => Some(BuiltinImage::Dns),
        _ => None,
    }
}
