//! Every file Ember writes goes through here (artifacts, embeddings, schemas; checkpoints when
//! training lands), so the rules hold for all of them:
//!
//! - [`check_output`] runs before any work: the target is not a directory, device or other
//!   non-regular file, it is not one of the command's inputs (after symlinks and hard links), and
//!   its directory exists and is writable.
//! - [`write_atomic`] writes a temp file in the target's directory, fsyncs it, renames it over the
//!   target and fsyncs the directory: a crash leaves the old file or the new one, never half of
//!   one. Temp names are short (`.ember-<pid>-<n>.tmp`), so any legal target name works, and temp
//!   files left by dead Ember processes in that directory are removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

const TEMP_PREFIX: &str = ".ember-";
const TEMP_SUFFIX: &str = ".tmp";

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The directory a target is written in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Where a path that does not exist yet would be created: its directory resolved (symlinks,
/// `..`), then its name.
fn future_path(p: &Path) -> Option<std::path::PathBuf> {
    Some(fs::canonicalize(parent_dir(p)).ok()?.join(p.file_name()?))
}

/// Whether `a` and `b` are the same file: the same device and inode when both exist (symlinks
/// and hard links included), the same place when neither does yet (two outputs of one command).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if !a.exists() && !b.exists() {
        return future_path(a).is_some_and(|x| future_path(b) == Some(x));
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                x.dev() == y.dev() && x.ino() == y.ino()
            }
            #[cfg(not(unix))]
            {
                let _ = (x, y);
                fs::canonicalize(a).ok() == fs::canonicalize(b).ok()
            }
        }
        _ => false,
    }
}

/// Checks, before any work, that `out` can be written without harm: it names a file (not a path
/// ending in `/`), is not an existing directory, device or other non-regular file, is none of
/// `inputs` (files or directories the command reads; a file inside an input directory counts),
/// and its directory exists and accepts new files.
pub fn check_output(out: &Path, inputs: &[&Path]) -> io::Result<()> {
    let text = out.as_os_str().to_string_lossy();
    if out.file_name().is_none() || text.ends_with('/') {
        return Err(invalid(
            "is not a file path; give a file name such as model.ember".into(),
        ));
    }
    if let Ok(meta) = fs::symlink_metadata(out) {
        let target = fs::metadata(out).unwrap_or(meta);
        if target.is_dir() {
            return Err(invalid("is a directory; give a file name such as model.ember".into()));
        }
        if !target.is_file() {
            return Err(invalid(
                "exists and is not a regular file (a device, socket or pipe); Ember replaces only regular files".into(),
            ));
        }
    }
    for input in inputs {
        let in_dir = fs::metadata(input).is_ok_and(|m| m.is_dir()) && input_holds(input, out);
        if same_file(out, input) || in_dir {
            return Err(invalid(format!(
                "is also an input of this command ({}); writing it would destroy that input; choose another output path",
                input.display()
            )));
        }
    }
    let dir = parent_dir(out);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(invalid(format!("{} is not a directory", dir.display()))),
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist; create it first", dir.display()),
            ));
        }
    }
    // Writable: create (and remove) a temp file where the real one will go.
    let (tmp, file) = create_temp(dir)?;
    drop(file);
    let _ = fs::remove_file(tmp);
    Ok(())
}

/// Whether the existing file `out` is one of the files inside the input directory `dir`.
fn input_holds(dir: &Path, out: &Path) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| same_file(&e.path(), out))
}

/// A new, uniquely and briefly named file in `dir` (never an existing one).
fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TEMP_PREFIX}{pid}-{n}{TEMP_SUFFIX}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // A leftover of a dead process with the same pid: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The pid in an Ember temp file name, if `name` is one.
fn temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes temp files of Ember processes that no longer run (where that can be told: Linux
/// `/proc`); files of live processes and anything else are left alone.
fn remove_stale_temps(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically (module docs). On failure the temp file is removed and an
/// existing `path` is untouched. A `path` that exists and is not a regular file is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(invalid("not a file path (it has no file name)".into()));
    }
    if let Ok(meta) = fs::metadata(path)
        && !meta.is_file()
    {
        return Err(invalid(
            "exists and is not a regular file; Ember replaces only regular files".into(),
        ));
    }
    let dir = parent_dir(path);
    remove_stale_temps(dir);
    let (tmp, mut file) = create_temp(dir)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| {
        drop(file);
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Persist the rename itself (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ember-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_replace_regular_files_only() {
        let d = tmp_dir("regular");
        let f = d.join("a.ember");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        assert!(sub.is_dir());
        #[cfg(unix)]
        assert!(write_atomic(Path::new("/dev/null"), b"x").is_err());
        // No temp file is left behind.
        let left: Vec<_> = fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_255_byte_file_name_works() {
        let d = tmp_dir("long");
        let name = format!("{}.ember", "n".repeat(249));
        assert_eq!(name.len(), 255);
        write_atomic(&d.join(&name), b"x").unwrap();
        assert_eq!(fs::read(d.join(&name)).unwrap(), b"x");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed() {
        let d = tmp_dir("stale");
        // pid 0 never names a user process, so /proc/0 does not exist.
        let stale = d.join(format!("{TEMP_PREFIX}0-7{TEMP_SUFFIX}"));
        let live = d.join(format!("{TEMP_PREFIX}{}-999999{TEMP_SUFFIX}", std::process::id()));
        let other = d.join(".ember-notes.tmp");
        for f in [&stale, &live, &other] {
            fs::write(f, b"").unwrap();
        }
        write_atomic(&d.join("out.jsonl"), b"{}").unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
        assert!(live.exists() && other.exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn two_outputs_that_do_not_exist_yet_are_the_same_file_when_they_name_one_place() {
        let d = tmp_dir("future");
        let a = d.join("model.ember");
        let b = d.join("sub/../model.ember");
        fs::create_dir_all(d.join("sub")).unwrap();
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &d.join("model.ember.ckpt")));
        assert!(check_output(&b, &[&a]).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn outputs_that_are_inputs_or_not_files_are_refused_before_work() {
        let d = tmp_dir("check");
        let config = d.join("c.json");
        fs::write(&config, b"{}").unwrap();
        let err = check_output(&config, &[&config]).unwrap_err();
        assert!(err.to_string().contains("is also an input"), "{err}");
        #[cfg(unix)]
        {
            let link = d.join("link.json");
            std::os::unix::fs::symlink(&config, &link).unwrap();
            assert!(check_output(&link, &[&config]).is_err());
            let hard = d.join("hard.json");
            fs::hard_link(&config, &hard).unwrap();
            assert!(check_output(&hard, &[&config]).is_err());
            assert!(check_output(Path::new("/dev/null"), &[]).is_err());
        }
        // A file inside an input directory (the model's own files) is an input too.
        let model = d.join("model");
        fs::create_dir(&model).unwrap();
        fs::write(model.join("model.safetensors"), b"w").unwrap();
        assert!(check_output(&model.join("model.safetensors"), &[&model]).is_err());
        assert!(check_output(&model.join("new.ember"), &[&model]).is_ok());
        assert!(check_output(&d, &[]).unwrap_err().to_string().contains("directory"));
        let missing = d.join("no/such/dir/out.ember");
        assert!(
            check_output(&missing, &[])
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        let under_file = config.join("out.ember");
        assert!(check_output(&under_file, &[]).is_err());
        assert!(check_output(&d.join("fresh.ember"), &[&config]).is_ok());
        assert!(!d.join("fresh.ember").exists());
        let _ = fs::remove_dir_all(&d);
    }
}
