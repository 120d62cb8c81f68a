//! Forge's files are private to the server's user: everything the process creates gets a
//! umask of 077 (the generated secret, stored objects and their folders, logs), and the data
//! dir is 0700, or 0711 when the server runs as root and the embedded Postgres, which then
//! runs as an unprivileged account, must pass through it to its own 0700 cluster directory.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Makes every file and directory the process creates from now on private to its user.
/// `main` calls it before the runtime starts; [`crate::run`] calls it again for embedders.
pub fn restrict_new_files() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Creates the data dir if needed and makes it private (also one an earlier version left
/// readable). A directory owned by another user is left as it is.
pub fn secure_data_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if !owned_by_us(dir)? {
        tracing::warn!(dir = %dir.display(), "the data dir belongs to another user; its permissions are left as they are");
        return Ok(());
    }
    let mode = if running_as_root() { 0o711 } else { 0o700 };
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

fn owned_by_us(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    Ok(fs::metadata(path)?.uid() == uid)
}

/// Creates a directory of the server's own (the local file store) if needed and makes it
/// 0700.
pub fn secure_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}
