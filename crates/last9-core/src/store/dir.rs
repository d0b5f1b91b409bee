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

/// How many other names in the temp dir are tried when `last9-<uid>` there is not ours.
const ALTERNATES: usize = 8;

/// Where instance directories may live, best first: `$XDG_RUNTIME_DIR/last9-<uid>` (a private
/// tmpfs on systemd machines) if set, then `last9-<uid>` in the temp dir, then
/// `last9-<uid>.1`, `.2`, ... there. Every process walks them in the same order, so the workers
/// of a server agree on the first one that is (or can be made) a private directory of this
/// user, even when another user made the usual one first.
fn bases() -> Vec<PathBuf> {
    // SAFETY: getuid cannot fail.
    let name = format!("last9-{}", unsafe { libc::getuid() });
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir());
    let temp = std::env::temp_dir();
    let mut bases: Vec<PathBuf> = runtime.into_iter().map(|r| r.join(&name)).collect();
    bases.push(temp.join(&name));
    bases.extend((1..=ALTERNATES).map(|i| temp.join(format!("{name}.{i}"))));
    bases
}

/// The first place instance directories may live (see [`bases`]), for messages.
pub fn runtime_base() -> PathBuf {
    bases().swap_remove(0)
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

/// Makes `path` a directory only this user can use, refusing one that someone else owns or can
/// write to, or that is a symlink (the base lives in a world-writable directory).
pub fn private_dir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check_private(path, &fs::symlink_metadata(path)?)
}

fn this_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Refuses a directory that is a symlink, that another user owns, or that group or others can
/// write to: whoever can write to it can forge counts or read them.
fn check_private(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}", path.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("is not a directory (a symlink?)".into());
    }
    if meta.uid() != this_uid() {
        return refuse(format!(
            "is owned by uid {}, not by this user (uid {})",
            meta.uid(),
            this_uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return refuse(format!("can be written by group or others (mode {mode:04o})"));
    }
    Ok(())
}

/// A directory the user named (`LAST9_MULTIPROC_DIR`), made private if missing, and checked as
/// the default one is: ours, written by no one else. Its parents must not let anyone else swap
/// it either: each is owned by this user or root, and writable by no one else unless sticky
/// (like `/tmp`). Returns the path with symlinks resolved.
pub fn checked_dir(path: &Path) -> io::Result<PathBuf> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let path = fs::canonicalize(path)?;
    check_private(&path, &fs::symlink_metadata(&path)?)?;
    for parent in path.ancestors().skip(1) {
        let meta = fs::symlink_metadata(parent)?;
        let mode = meta.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if (meta.uid() != this_uid() && meta.uid() != 0) || (mode & 0o022 != 0 && !sticky) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: its parent {} can be changed by another user (uid {}, mode {:04o})",
                    path.display(),
                    parent.display(),
                    meta.uid(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(path)
}

/// The instance directory for the root `pid`, made if needed, in the first usable base; removes
/// directories of dead roots.
pub fn instance_dir(pid: u32) -> io::Result<PathBuf> {
    let mut refused: Option<io::Error> = None;
    for base in bases() {
        match private_dir(&base) {
            Ok(()) => {
                if let Some(why) = &refused {
                    super::merge::notice(format!("last9: keeping the store in {}: {why}", base.display()));
                }
                return instance_dir_in(&base, pid);
            }
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
    }
    let why = refused.map_or_else(String::new, |e| e.to_string());
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("no private directory for the store ({why}, and {ALTERNATES} alternates refused)"),
    ))
}

fn instance_dir_in(base: &Path, pid: u32) -> io::Result<PathBuf> {
    let name = instance_name(pid);
    let dir = base.join(&name);
    let created = match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    if created {
        remove_stale(base, &name);
    }
    Ok(dir)
}

/// The instance directory of `pid` if some process already made it.
pub fn existing_instance_dir(pid: u32) -> Option<PathBuf> {
    let name = instance_name(pid);
    bases().into_iter().find_map(|base| {
        let meta = fs::symlink_metadata(&base).ok()?;
        check_private(&base, &meta).ok()?;
        let dir = base.join(&name);
        dir.is_dir().then_some(dir)
    })
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

    #[test]
    fn a_named_directory_must_be_private_all_the_way_up() {
        let top = std::env::temp_dir().join(format!("last9-checked-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        // Made private when missing, parents included.
        let made = checked_dir(&top.join("a/b")).unwrap();
        for dir in [&top, &top.join("a"), &made] {
            assert_eq!(fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        fs::set_permissions(&made, fs::Permissions::from_mode(0o770)).unwrap();
        assert!(checked_dir(&made).is_err(), "group-writable");
        fs::set_permissions(&made, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(checked_dir(&made).is_err(), "a parent anyone can write to");
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(checked_dir(&made).is_ok(), "a sticky parent, like /tmp");
        fs::remove_dir_all(&top).unwrap();
    }
}
