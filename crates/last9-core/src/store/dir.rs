//! Where a server instance keeps its files.
//!
//! Without `LAST9_MULTIPROC_DIR`, each instance gets `<runtime dir>/last9-<uid>/<pid>-<start>`,
//! keyed by the pid of the instance's root process (the server's master) and that process's
//! start time, so two apps on one machine never share files and a reused pid never inherits a
//! dead instance's counts. Directories whose root is gone are removed when a new one is made.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `$XDG_RUNTIME_DIR` (a private tmpfs on systemd machines) if usable, else the temp dir.
pub fn runtime_base() -> PathBuf {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir());
    let base = runtime.unwrap_or_else(std::env::temp_dir);
    // SAFETY: getuid cannot fail.
    base.join(format!("last9-{}", unsafe { libc::getuid() }))
}

/// The start time of a process, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The directory name of the instance rooted at `pid`.
pub fn instance_name(pid: u32) -> String {
    format!("{pid}-{}", start_time(pid).unwrap_or(0))
}

/// Makes `path` a directory only this user can use, refusing one that someone else owns or that
/// is a symlink (the base lives in a world-writable directory).
pub fn private_dir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(path)?;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory of this user", path.display()),
        ));
    }
    Ok(())
}

/// The instance directory for the root `pid`, made if needed; removes directories of dead roots.
pub fn instance_dir(pid: u32) -> io::Result<PathBuf> {
    let base = runtime_base();
    if let Some(parent) = base.parent() {
        fs::create_dir_all(parent)?;
    }
    private_dir(&base)?;
    let name = instance_name(pid);
    let dir = base.join(&name);
    let created = match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    if created {
        remove_stale(&base, &name);
    }
    Ok(dir)
}

/// The instance directory of `pid` if some process already made it.
pub fn existing_instance_dir(pid: u32) -> Option<PathBuf> {
    let dir = runtime_base().join(instance_name(pid));
    dir.is_dir().then_some(dir)
}

/// Removes `<pid>-<start>` directories whose process is gone (or is another process now).
fn remove_stale(base: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == keep {
            continue;
        }
        let Some((pid, start)) = name.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            continue;
        };
        if start == 0 || start_time(pid) == Some(start) {
            continue; // unknown start time: cannot tell, so keep it
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known_and_stable() {
        let me = std::process::id();
        let first = start_time(me).expect("/proc is mounted");
        assert_eq!(start_time(me), Some(first));
        assert_eq!(instance_name(me), format!("{me}-{first}"));
    }

    #[test]
    fn stale_directories_are_removed_and_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("last9-dir-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let live = instance_name(std::process::id());
        // pid 1 exists, but did not start at tick 1 after boot on any real machine.
        for name in [live.as_str(), "1-1", "4194304-5", "not-ours", "keep"] {
            fs::create_dir_all(base.join(name)).unwrap();
        }
        remove_stale(&base, "keep");
        let mut left: Vec<String> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![live, "keep".to_string(), "not-ours".to_string()];
        expected.sort();
        assert_eq!(left, expected);
        fs::remove_dir_all(&base).unwrap();
    }
}
