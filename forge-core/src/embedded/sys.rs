//! The few system calls the supervisor needs, behind safe functions.
#![allow(unsafe_code)]

use std::ffi::CString;

/// An unprivileged account to run Postgres as (Postgres refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks up a user by name in the system's user database.
pub(crate) fn lookup_user(name: &str) -> Option<Account> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` outlives it; getpwnam_r writes only
    // into `pwd` and `buf` and reports through `result`.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(Account { uid: pwd.pw_uid, gid: pwd.pw_gid })
}

/// Whether a process with this pid exists (it may belong to another user).
pub(crate) fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` to `pid`. Returns false if the process does not exist.
pub(crate) fn signal(pid: i32, signal: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill has no memory-safety preconditions; pid is positive so it targets one process.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// In a child about to exec: deliver `signal` to it when the thread that spawned it dies.
/// Must run after the uid switch, which clears the setting.
pub(crate) fn set_parent_death_signal(signal: i32) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the calling process; it is
    // async-signal-safe and so allowed between fork and exec.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Adds `f` to the pre-exec hooks of `cmd`.
pub(crate) fn pre_exec(
    cmd: &mut std::process::Command,
    f: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the hooks registered here (prctl) are async-signal-safe and allocate nothing.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// Runs `f` when the process exits normally (returns from main or calls `exit`).
#[cfg(feature = "test-support")]
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function that lives for the whole program.
    unsafe {
        libc::atexit(f);
    }
}
