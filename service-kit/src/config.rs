//! Reading configuration values that may come from files (Kubernetes
//! Secrets mount as files: `..._FILE`).

use std::path::Path;

use anyhow::Context;
use secrecy::SecretString;

pub fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A secret given directly, or else read (trimmed) from a file.
pub fn read_secret(
    value: Option<SecretString>,
    file: Option<&Path>,
) -> anyhow::Result<Option<SecretString>> {
    match (value, file) {
        (Some(value), _) => Ok(Some(value)),
        (None, Some(path)) => Ok(Some(SecretString::from(read_file(path)?.trim().to_owned()))),
        (None, None) => Ok(None),
    }
}
