//! Capability reduction: a sliver's root keeps only what a VServer guest's root had — owning
//! files, killing its own processes, binding low ports — and nothing that reaches the kernel or
//! other slivers (no SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_TIME, SYS_BOOT, MKNOD, DAC_READ_SEARCH…).

/// Capabilities kept (numbers from linux/capability.h).
pub const KEPT: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    29, // AUDIT_WRITE
    31, // SETFCAP
];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability not in `KEPT` from the bounding, ambient, effective, permitted and
/// inheritable sets of the calling thread. Async-signal-safe (only syscalls).
pub fn drop_to_kept() -> Result<(), nix::Error> {
    // The bounding set first: it needs CAP_SETPCAP, which is kept.
    for cap in 0..64u32 {
        if KEPT.contains(&cap) {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = nix::Error::last();
            // EINVAL: beyond the kernel's last capability.
            if e == nix::Error::EINVAL {
                break;
            }
            return Err(e);
        }
    }
    // SAFETY: plain prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut lo = 0u32;
    let mut hi = 0u32;
    for &c in KEPT {
        if c < 32 {
            lo |= 1 << c;
        } else {
            hi |= 1 << (c - 32);
        }
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    // SAFETY: header and two data structs as capset(2) v3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// `no_new_privs`, reduced capabilities and the seccomp filter: the confinement every process in
/// a sliver runs under. Async-signal-safe given a prebuilt filter.
pub fn confine(filter: &[libc::sock_filter]) -> Result<(), nix::Error> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(nix::Error::last());
    }
    drop_to_kept()?;
    super::seccomp::install(filter)
}
