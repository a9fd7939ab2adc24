//! Config errors: every problem names the JSON pointer it concerns, says what is wrong and what
//! would be right. Validation collects all of them; [`ConfigErrors`] prints one per line.

use thiserror::Error;

/// One problem in a config, located by its JSON pointer (RFC 6901, `""` = the whole document).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The text is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },

    /// A key the config language does not have.
    #[error("{pointer}: unknown key `{key}`{}", suggestion_text(suggestion, allowed))]
    UnknownKey {
        pointer: String,
        key: String,
        suggestion: Option<String>,
        allowed: Vec<String>,
    },

    /// A required key is absent.
    #[error("{pointer}: missing required key `{key}`{}", why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    MissingKey {
        pointer: String,
        key: String,
        why: Option<String>,
    },

    /// A value of the wrong JSON type.
    #[error("{pointer}: expected {expected}, found {found}")]
    WrongType {
        pointer: String,
        expected: String,
        found: String,
    },

    /// A string that is not one of the allowed choices.
    #[error("{pointer}: `{value}` is not one of {}{}", list(allowed), suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    NotOneOf {
        pointer: String,
        value: String,
        allowed: Vec<String>,
        suggestion: Option<String>,
    },

    /// A number outside its allowed range.
    #[error("{pointer}: {value} is out of range; allowed: {allowed}")]
    OutOfRange {
        pointer: String,
        value: String,
        allowed: String,
    },

    /// A `modules` entry that is not a valid regular expression.
    #[error("{pointer}: invalid regex `{pattern}`: {message}")]
    InvalidRegex {
        pointer: String,
        pattern: String,
        message: String,
    },

    /// A `modules` pattern that matches no compressible module of the model.
    #[error(
        "{pointer}: pattern `{pattern}` matches no module of {model}; nearest module paths: {}",
        list(nearest)
    )]
    NoMatch {
        pointer: String,
        pattern: String,
        model: String,
        nearest: Vec<String>,
    },

    /// A module claimed by two groups of the same technique.
    #[error(
        "{pointer}: module `{module}` is matched by groups `{first}` and `{second}` of {technique}; a module may belong to one group per technique"
    )]
    DoubleMatch {
        pointer: String,
        module: String,
        technique: String,
        first: String,
        second: String,
    },

    /// A technique matched a site of a kind it cannot handle.
    #[error("{pointer}: {technique} cannot apply to {kind} `{module}` (pattern `{pattern}`); it handles {accepts}")]
    UnsupportedSite {
        pointer: String,
        technique: String,
        kind: String,
        module: String,
        pattern: String,
        accepts: String,
    },

    /// `related_modules` that do not line up with `modules`.
    #[error("{pointer}: {message}")]
    RelatedModules { pointer: String, message: String },

    /// Any other rule of the config language, phrased for the user.
    #[error("{pointer}: {message}")]
    Invalid { pointer: String, message: String },

    /// Valid config, but a part Ember does not implement yet.
    #[error("{pointer}: not supported yet: {message}")]
    NotSupported { pointer: String, message: String },
}

impl ConfigError {
    /// The JSON pointer of the problem (`""` for syntax errors and whole-document problems).
    pub fn pointer(&self) -> &str {
        match self {
            ConfigError::Syntax { .. } => "",
            ConfigError::UnknownKey { pointer, .. }
            | ConfigError::MissingKey { pointer, .. }
            | ConfigError::WrongType { pointer, .. }
            | ConfigError::NotOneOf { pointer, .. }
            | ConfigError::OutOfRange { pointer, .. }
            | ConfigError::InvalidRegex { pointer, .. }
            | ConfigError::NoMatch { pointer, .. }
            | ConfigError::DoubleMatch { pointer, .. }
            | ConfigError::UnsupportedSite { pointer, .. }
            | ConfigError::RelatedModules { pointer, .. }
            | ConfigError::Invalid { pointer, .. }
            | ConfigError::NotSupported { pointer, .. } => pointer,
        }
    }

    /// Whether this error only says "not implemented yet" (the config itself is valid).
    pub fn is_not_supported(&self) -> bool {
        matches!(self, ConfigError::NotSupported { .. })
    }

    pub(crate) fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    pub(crate) fn range(pointer: impl Into<String>, value: impl ToString, allowed: impl Into<String>) -> Self {
        ConfigError::OutOfRange {
            pointer: pointer.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    pub(crate) fn missing(pointer: impl Into<String>, key: &str, why: impl Into<String>) -> Self {
        ConfigError::MissingKey {
            pointer: pointer.into(),
            key: key.to_string(),
            why: Some(why.into()),
        }
    }
}

/// All problems found in one config, in document order. Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// True when every problem is a "not supported yet" (the config is valid Ember).
    pub fn only_not_supported(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(ConfigError::is_not_supported)
    }
}

/// `s` with control characters (other than the line break) and bidirectional overrides written
/// as `\u{…}` escapes.
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
            if (c.is_control() && c != '\n') || bidi {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The most errors printed; the rest are counted (a screenful, not megabytes of repeats).
pub const MAX_PRINTED_ERRORS: usize = 40;

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() > MAX_PRINTED_ERRORS {
            let shown = ConfigErrors(self.0[..MAX_PRINTED_ERRORS].to_vec());
            return write!(
                f,
                "{shown}\nerror: … and {} more errors (fix the ones above first)",
                self.0.len() - MAX_PRINTED_ERRORS
            );
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // The whole document's pointer is "", which would print as a bare ": ". Control and
            // bidi characters from the config are escaped: they must not drive the terminal.
            let text = escape_controls(&e.to_string());
            match text.strip_prefix(": ") {
                Some(rest) => write!(f, "error: (top level): {rest}")?,
                None => write!(f, "error: {text}")?,
            }
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    format!("[{}]", quoted.join(", "))
}

fn suggestion_text(suggestion: &Option<String>, allowed: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if allowed.is_empty() => String::new(),
        None => format!("; allowed keys: {}", list(allowed)),
    }
}

/// Appends a token to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub(crate) fn push_pointer(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}
