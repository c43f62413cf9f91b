//! A container's privileges, as a container runtime (runc, crun) sets them
//! just before `execve`: the capability bounding set, no_new_privs, the
//! default seccomp filter, and the switch to the container's user.
//!
//! [`Security`] is plain data (it travels in the shim's spec); [`Prepared`]
//! holds everything compiled in advance (the BPF programs), so that
//! [`Prepared::apply_in_child`] only makes raw syscalls between `fork` and
//! `exec`.

use serde::{Deserialize, Serialize};
use std::io;

/// Capability names, index = capability number (`CAP_` omitted), as in
/// `linux/capability.h`.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The set containerd and Docker give a container by default.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability this list knows.
pub const ALL_CAPABILITIES: u64 = (1u64 << CAPABILITIES.len()) - 1;

/// The number of a capability named as Kubernetes does (`NET_ADMIN`; a
/// `CAP_` prefix and any case are accepted, as containerd does).
pub fn capability(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|i| i as u32)
}

/// Bit mask of [`DEFAULT_CAPABILITIES`].
pub fn default_capabilities() -> u64 {
    DEFAULT_CAPABILITIES
        .iter()
        .filter_map(|n| capability(n))
        .fold(0, |m, c| m | (1 << c))
}

/// The names in a mask, in capability order.
#[cfg(test)]
pub fn capability_names(mask: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// A capability name that is not one of Linux's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct CapabilityError(pub String);

/// `securityContext.capabilities` applied to the default set, as
/// containerd does: `add: [ALL]` starts from every capability, `drop: [ALL]`
/// from none, then the named drops are removed and the named adds added.
/// Unknown names are an error (validation reports them first).
pub fn capability_set(add: &[String], drop: &[String]) -> Result<u64, CapabilityError> {
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    let mut set = if add.iter().any(is_all) {
        ALL_CAPABILITIES
    } else {
        default_capabilities()
    };
    if drop.iter().any(is_all) {
        set = 0;
    }
    for d in drop.iter().filter(|d| !is_all(d)) {
        let c = capability(d).ok_or_else(|| CapabilityError(d.clone()))?;
        set &= !(1 << c);
    }
    for a in add.iter().filter(|a| !is_all(a)) {
        let c = capability(a).ok_or_else(|| CapabilityError(a.clone()))?;
        set |= 1 << c;
    }
    Ok(set)
}

/// What a container may do. The default is the default container profile:
/// the default capability set, no_new_privs, the default seccomp filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// Bit n = capability n: the bounding set, and the effective and
    /// permitted sets of a container that runs as root. A container that
    /// runs as another user execs with no capabilities (no ambient set), as
    /// under runc.
    pub capabilities: u64,
    /// All capabilities, no seccomp filter.
    pub privileged: bool,
    pub no_new_privs: bool,
    /// The default (RuntimeDefault-like) seccomp filter.
    pub seccomp: bool,
    /// The container's writable places outside its volumes (the pod's
    /// `/tmp`, `/run`, `/dev/shm`) are read-only for it.
    pub read_only_root: bool,
    /// Refuse to start the container as root.
    pub run_as_non_root: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            capabilities: default_capabilities(),
            privileged: false,
            no_new_privs: true,
            seccomp: true,
            read_only_root: false,
            run_as_non_root: false,
        }
    }
}

impl Security {
    /// Everything allowed: the shim's own probes of old specs, and
    /// `privileged: true`.
    pub fn privileged() -> Security {
        Security {
            capabilities: ALL_CAPABILITIES,
            privileged: true,
            no_new_privs: false,
            seccomp: false,
            read_only_root: false,
            run_as_non_root: false,
        }
    }
}

// ---------------------------------------------------------------------------
// The default seccomp filter.

/// System calls denied (EPERM) unless the container holds the capability
/// named first (None: always denied). The shape of Docker's and
/// containerd's default profiles, written as a deny list.
fn deny_groups() -> Vec<(Option<&'static str>, Vec<i64>)> {
    use libc::*;
    let mut g: Vec<(Option<&'static str>, Vec<i64>)> = vec![
        (
            Some("SYS_ADMIN"),
            vec![
                SYS_mount,
                SYS_umount2,
                SYS_pivot_root,
                SYS_setns,
                SYS_unshare,
                SYS_swapon,
                SYS_swapoff,
                SYS_fsopen,
                SYS_fsconfig,
                SYS_fsmount,
                SYS_fspick,
                SYS_move_mount,
                SYS_open_tree,
                SYS_mount_setattr,
                SYS_quotactl,
                SYS_fanotify_init,
                SYS_name_to_handle_at,
                SYS_lookup_dcookie,
            ],
        ),
        (Some("DAC_READ_SEARCH"), vec![SYS_open_by_handle_at]),
        (
            Some("SYS_MODULE"),
            vec![SYS_init_module, SYS_finit_module, SYS_delete_module],
        ),
        (
            Some("SYS_BOOT"),
            vec![SYS_reboot, SYS_kexec_load, SYS_kexec_file_load],
        ),
        (
            Some("SYS_PTRACE"),
            vec![
                SYS_ptrace,
                SYS_process_vm_readv,
                SYS_process_vm_writev,
                SYS_kcmp,
            ],
        ),
        (Some("SYS_PACCT"), vec![SYS_acct]),
        (Some("BPF"), vec![SYS_bpf]),
        (Some("PERFMON"), vec![SYS_perf_event_open]),
        (Some("SYSLOG"), vec![SYS_syslog]),
        (
            Some("SYS_TIME"),
            vec![
                SYS_settimeofday,
                SYS_clock_settime,
                SYS_clock_adjtime,
                SYS_adjtimex,
            ],
        ),
        (
            None,
            vec![SYS_keyctl, SYS_add_key, SYS_request_key, SYS_userfaultfd],
        ),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        g.push((Some("SYS_RAWIO"), vec![SYS_iopl, SYS_ioperm]));
        g.push((None, vec![SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl]));
    }
    g
}

/// The x32 ABI numbers the same calls with bit 30 set; a few have their own.
#[cfg(target_arch = "x86_64")]
const X32_BIT: i64 = 0x4000_0000;
#[cfg(target_arch = "x86_64")]
fn x32_extra(cap: Option<&str>) -> Vec<i64> {
    match cap {
        Some("SYS_PTRACE") => vec![521, 539, 540], // ptrace, process_vm_readv/writev
        Some("SYS_BOOT") => vec![528],             // kexec_load
        _ => vec![],
    }
}

fn target_arch() -> io::Result<seccompiler::TargetArch> {
    seccompiler::TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        io::Error::other(format!(
            "no seccomp filter for {}: run the pod privileged or with seccompProfile Unconfined",
            std::env::consts::ARCH
        ))
    })
}

/// The BPF programs of the default filter for a container holding `caps`:
/// the deny list (EPERM) and, in a second program, `clone3` answered with
/// ENOSYS (its flags are out of a filter's reach, so the C library falls
/// back to `clone`, whose flags are checked).
pub fn default_filter(caps: u64) -> io::Result<Vec<seccompiler::BpfProgram>> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    use std::collections::BTreeMap;
    let bad = |e: seccompiler::BackendError| io::Error::other(format!("seccomp filter: {e}"));
    let has = |name: &str| capability(name).is_some_and(|c| caps & (1 << c) != 0);
    let arch = target_arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (cap, calls) in deny_groups() {
        if cap.is_some_and(has) {
            continue;
        }
        for nr in calls {
            rules.insert(nr, vec![]);
            #[cfg(target_arch = "x86_64")]
            rules.insert(nr | X32_BIT, vec![]);
        }
        #[cfg(target_arch = "x86_64")]
        for nr in x32_extra(cap) {
            rules.insert(nr | X32_BIT, vec![]);
        }
    }
    let mut programs = Vec::new();
    if !has("SYS_ADMIN") {
        // clone(2) creating a user namespace (the only namespace an
        // unprivileged process may create).
        let newuser = libc::CLONE_NEWUSER as u64;
        let cond = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(newuser),
            newuser,
        )
        .map_err(bad)?;
        let rule = SeccompRule::new(vec![cond]).map_err(bad)?;
        rules.insert(libc::SYS_clone, vec![rule.clone()]);
        #[cfg(target_arch = "x86_64")]
        rules.insert(libc::SYS_clone | X32_BIT, vec![rule]);
        let mut clone3 = BTreeMap::new();
        clone3.insert(libc::SYS_clone3, vec![]);
        #[cfg(target_arch = "x86_64")]
        clone3.insert(libc::SYS_clone3 | X32_BIT, vec![]);
        let f = SeccompFilter::new(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )
        .map_err(bad)?;
        programs.push(f.try_into().map_err(bad)?);
    }
    let f = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(bad)?;
    programs.insert(0, f.try_into().map_err(bad)?);
    Ok(programs)
}

// ---------------------------------------------------------------------------
// Applying it between fork and exec.

/// Where [`Prepared::apply_in_child`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Capabilities,
    NoNewPrivs,
    Seccomp,
    Identity,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Capabilities => "setting the capability sets",
            Stage::NoNewPrivs => "setting no_new_privs",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::Identity => "changing user/group",
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

/// [`Security`] plus identity, compiled ahead of the fork.
#[derive(Clone)]
pub struct Prepared {
    caps: u64,
    no_new_privs: bool,
    filters: Vec<Vec<libc::sock_filter>>,
    uid: Option<u32>,
    gid: Option<u32>,
    last_cap: u32,
}

impl Prepared {
    pub fn new(sec: &Security, uid: Option<u32>, gid: Option<u32>) -> io::Result<Prepared> {
        if sec.run_as_non_root && uid.unwrap_or(0) == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "container has runAsNonRoot and would run as root (set runAsUser to a non-zero UID)",
            ));
        }
        let caps = if sec.privileged {
            ALL_CAPABILITIES
        } else {
            sec.capabilities & ALL_CAPABILITIES
        };
        let filters = if sec.seccomp && !sec.privileged {
            default_filter(caps)?
                .into_iter()
                .map(|p| {
                    p.into_iter()
                        .map(|i| libc::sock_filter {
                            code: i.code,
                            jt: i.jt,
                            jf: i.jf,
                            k: i.k,
                        })
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(CAPABILITIES.len() as u32 - 1);
        Ok(Prepared {
            caps,
            no_new_privs: sec.no_new_privs && !sec.privileged,
            filters,
            uid,
            gid,
            last_cap,
        })
    }

    /// Drop to the container's privileges, in runc's order: inheritable
    /// and ambient sets cleared, bounding set cut to the container's set,
    /// no_new_privs, the seccomp filter (while CAP_SYS_ADMIN is still
    /// effective, so it also installs without no_new_privs), the user and
    /// groups, then the effective and permitted sets of a root container.
    ///
    /// # Safety
    /// Only raw, async-signal-safe syscalls on memory owned by `self`: safe
    /// between `fork` and `exec` of a multi-threaded parent.
    pub unsafe fn apply_in_child(&self) -> Result<(), (Stage, i32)> {
        let errno = || unsafe { *libc::__errno_location() };
        let hdr = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let mut cur = [CapData::default(); 2];
        // SAFETY (whole function): raw syscalls with pointers to locals.
        unsafe {
            if libc::syscall(libc::SYS_capget, &hdr, cur.as_mut_ptr()) < 0 {
                return Err((Stage::Capabilities, errno()));
            }
            let mut set = cur;
            for d in &mut set {
                d.effective = d.permitted;
                d.inheritable = 0;
            }
            if libc::syscall(libc::SYS_capset, &hdr, set.as_ptr()) < 0 {
                return Err((Stage::Capabilities, errno()));
            }
            // Fails on kernels without ambient capabilities: nothing to clear.
            libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
            for c in 0..=self.last_cap.min(63) {
                if self.caps & (1 << c) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) < 0
                    && errno() != libc::EINVAL
                {
                    return Err((Stage::Capabilities, errno()));
                }
            }
            if self.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                return Err((Stage::NoNewPrivs, errno()));
            }
            for f in &self.filters {
                let prog = libc::sock_fprog {
                    len: f.len() as libc::c_ushort,
                    filter: f.as_ptr() as *mut libc::sock_filter,
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                ) < 0
                {
                    return Err((Stage::Seccomp, errno()));
                }
            }
            if self.uid.is_some() || self.gid.is_some() {
                let r = match self.gid {
                    Some(g) => libc::setgroups(1, &g),
                    None => libc::setgroups(0, std::ptr::null()),
                };
                if r < 0 {
                    return Err((Stage::Identity, errno()));
                }
            }
            if let Some(g) = self.gid
                && libc::setgid(g) < 0
            {
                return Err((Stage::Identity, errno()));
            }
            if let Some(u) = self.uid
                && libc::setuid(u) < 0
            {
                return Err((Stage::Identity, errno()));
            }
            if self.uid.unwrap_or(0) == 0 {
                let lo = self.caps as u32;
                let hi = (self.caps >> 32) as u32;
                let mut set = cur;
                for (d, m) in set.iter_mut().zip([lo, hi]) {
                    d.permitted &= m;
                    d.effective = d.permitted;
                    d.inheritable = 0;
                }
                if libc::syscall(libc::SYS_capset, &hdr, set.as_ptr()) < 0 {
                    return Err((Stage::Capabilities, errno()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capability_names_and_numbers() {
        assert_eq!(capability("CHOWN"), Some(0));
        assert_eq!(capability("cap_net_admin"), Some(12));
        assert_eq!(capability("SYS_ADMIN"), Some(21));
        assert_eq!(capability("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability("NOPE"), None);
        assert_eq!(default_capabilities().count_ones(), 14);
        let d = capability_names(default_capabilities());
        assert!(d.contains(&"NET_BIND_SERVICE") && !d.contains(&"SYS_ADMIN"));
    }

    #[test]
    fn add_and_drop_like_containerd() {
        let def = default_capabilities();
        assert_eq!(capability_set(&[], &[]), Ok(def));
        assert_eq!(capability_set(&[], &names(&["ALL"])), Ok(0));
        assert_eq!(
            capability_set(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"])),
            Ok(1 << 10)
        );
        assert_eq!(
            capability_set(&names(&["NET_ADMIN"]), &names(&["KILL"])),
            Ok((def | 1 << 12) & !(1 << 5))
        );
        assert_eq!(capability_set(&names(&["ALL"]), &[]), Ok(ALL_CAPABILITIES));
        assert!(capability_set(&names(&["FLY"]), &[]).is_err());
    }

    #[test]
    fn filters_compile_and_follow_capabilities() {
        let p = default_filter(default_capabilities()).unwrap();
        assert_eq!(p.len(), 2, "deny list + clone3");
        let with_admin = default_filter(ALL_CAPABILITIES).unwrap();
        // Every capability held: only the always-denied calls remain.
        assert_eq!(with_admin.len(), 1);
        assert!(with_admin[0].len() < p[0].len());
    }

    #[test]
    fn run_as_non_root_refuses_root() {
        let s = Security {
            run_as_non_root: true,
            ..Security::default()
        };
        assert!(Prepared::new(&s, None, None).is_err());
        assert!(Prepared::new(&s, Some(0), None).is_err());
        assert!(Prepared::new(&s, Some(1000), None).is_ok());
    }
}
