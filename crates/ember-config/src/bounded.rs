//! Reading user files with a size limit: configs, HF `config.json`, text to embed, calibration and
//! training text. Every read of user input goes through here, so `/dev/zero` or a multi-gigabyte
//! file is a clear error naming the limit, never a read until memory runs out.

use std::io::Read;
use std::path::Path;

/// The most bytes of text data read (input to embed, calibration and training corpora).
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Reads at most `limit` bytes of UTF-8 text from `path`; a longer file is an error naming the
/// limit (a config of `/dev/zero` must not read until memory runs out).
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is larger than {limit} bytes, the most Ember reads for this file"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let dir = std::env::temp_dir().join(format!("ember-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("config.json");
        std::fs::write(&big, vec![b' '; 2048]).unwrap();
        let e = read_text_bounded(&big, 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        assert_eq!(read_text_bounded(&big, 4096).unwrap().len(), 2048);
        std::fs::write(&big, b"{\"a\": \"\xff\"}").unwrap();
        assert!(
            read_text_bounded(&big, 4096)
                .unwrap_err()
                .to_string()
                .contains("offset 7")
        );
        #[cfg(unix)]
        assert!(read_text_bounded(Path::new("/dev/zero"), 1024).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
