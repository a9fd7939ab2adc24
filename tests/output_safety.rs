//! Nothing Ember writes may destroy a user's file. Each case runs the real binary with an output
//! that is one of its inputs (directly, through a symlink or a hard link), a device, a directory,
//! or an event file on a run that is then refused, and checks the refusal's phrase and that every
//! protected file is byte for byte what it was. All cases fail before any model is fetched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Case {
    name: &'static str,
    /// Arguments; `{cfg}`, `{refused}`, `{text}`, `{victim}`, `{link}`, `{hard}`, `{dir}` are
    /// replaced by paths in a fresh directory.
    args: &'static [&'static str],
    /// What the error must say.
    phrase: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "compose --out is the config",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "{cfg}"],
        phrase: "is also an input",
    },
    Case {
        name: "compose --out is a symlink to the config",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "{link}"],
        phrase: "is also an input",
    },
    Case {
        name: "compose --out is a hard link to the config",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "{hard}"],
        phrase: "is also an input",
    },
    Case {
        name: "compose --events is the config",
        args: &["compose", "--quiet", "--config", "{cfg}", "--events", "{cfg}"],
        phrase: "is also an input",
    },
    Case {
        name: "compose --out equals --events",
        args: &[
            "compose", "--quiet", "--config", "{cfg}", "--events", "{victim}", "--out", "{victim}",
        ],
        phrase: "is also an input",
    },
    Case {
        name: "plan --events is the config",
        args: &[
            "compose",
            "--quiet",
            "--dry-run",
            "--config",
            "{cfg}",
            "--events",
            "{cfg}",
        ],
        phrase: "is also an input",
    },
    Case {
        name: "a refused compose leaves its event file alone",
        args: &["compose", "--quiet", "--config", "{refused}", "--events", "{victim}"],
        phrase: "not supported yet",
    },
    Case {
        name: "compose --out is a device",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "/dev/null"],
        phrase: "not a regular file",
    },
    Case {
        name: "compose --out is a directory",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "{dir}"],
        phrase: "is a directory",
    },
    Case {
        name: "compose --out ends in a slash",
        args: &["compose", "--quiet", "--config", "{cfg}", "--out", "{dir}/new/"],
        phrase: "not a file path",
    },
    Case {
        name: "compose --out under a file",
        args: &[
            "compose",
            "--quiet",
            "--config",
            "{cfg}",
            "--out",
            "{victim}/model.ember",
        ],
        phrase: "is not a directory",
    },
    Case {
        name: "embed --output is the input",
        args: &[
            "embed",
            "--model",
            "minilm-l6",
            "--input",
            "{text}",
            "--output",
            "{text}",
        ],
        phrase: "is also an input",
    },
    Case {
        name: "schema --output is a device",
        args: &["schema", "--output", "/dev/null"],
        phrase: "not a regular file",
    },
];

#[test]
fn no_output_destroys_an_input_or_a_non_regular_file() {
    let dir = std::env::temp_dir().join(format!("ember-output-safety-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.json");
    let refused = dir.join("refused.json");
    let text = dir.join("in.txt");
    let victim = dir.join("victim.ember");
    let link = dir.join("link.json");
    let hard = dir.join("hard.json");
    let files: Vec<(&Path, Vec<u8>)> = vec![
        (&cfg, std::fs::read(root().join("configs/w8-weight-only.json")).unwrap()),
        (
            &refused,
            std::fs::read(root().join("configs/sparse-l1-50.json")).unwrap(),
        ),
        (&text, b"A man is playing a guitar.\n".to_vec()),
        (&victim, b"a 23 MB artifact, say".to_vec()),
    ];
    for (path, bytes) in &files {
        std::fs::write(path, bytes).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(&cfg, &link).unwrap();
    std::fs::hard_link(&cfg, &hard).unwrap();
    let sub = |a: &str| -> String {
        a.replace("{cfg}", cfg.to_str().unwrap())
            .replace("{refused}", refused.to_str().unwrap())
            .replace("{text}", text.to_str().unwrap())
            .replace("{victim}", victim.to_str().unwrap())
            .replace("{link}", link.to_str().unwrap())
            .replace("{hard}", hard.to_str().unwrap())
            .replace("{dir}", dir.to_str().unwrap())
    };
    let mut failures = Vec::new();
    for case in CASES {
        let args: Vec<String> = case.args.iter().map(|a| sub(a)).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(&args)
            .current_dir(root())
            .env("EMBER_CACHE", dir.join("no-cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains(case.phrase) {
            failures.push(format!("{}: exit {:?}, stderr: {stderr}", case.name, out.status.code()));
        }
        for (path, bytes) in &files {
            if std::fs::read(path).ok().as_ref() != Some(bytes) {
                failures.push(format!("{}: destroyed {}", case.name, path.display()));
            }
        }
        if Path::new("/dev/null").metadata().is_ok_and(|m| m.is_file()) {
            failures.push(format!("{}: replaced /dev/null", case.name));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
