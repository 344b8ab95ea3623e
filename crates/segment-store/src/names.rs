//! Validating dataset names and mapping them to object-store directories.

use crate::{Result, StoreError};

/// Longest dataset or environment name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a dataset or environment name.
pub fn validate(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.trim().is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return invalid("longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return invalid("contains control characters");
    }
    Ok(())
}

/// The object-store directories holding data files (the manifest lives elsewhere).
pub const DATA_PREFIXES: [&str; 2] = ["segments", "rollups"];
/// Only files the store writes itself are data files.
pub const DATA_FILE_SUFFIX: &str = ".parquet";

/// Whether an object is a data file: written once under a unique name and never
/// changed, so a copy of its bytes (a read cache) never goes stale.
pub fn is_immutable_object(path: &object_store::path::Path) -> bool {
    let path = path.as_ref();
    path.ends_with(DATA_FILE_SUFFIX)
        && DATA_PREFIXES.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The object-store directory of a dataset's segments.
///
/// Names may hold any printable character, while object paths are safest with a
/// small alphabet: other characters become `_`, and a checksum of the real name is
/// appended whenever that changed anything, so two names never share a directory.
pub fn segment_dir(env: &str, dataset: &str) -> String {
    format!("segments/{}/{}", path_part(env), path_part(dataset))
}

/// The object-store directory of one rollup's segments (`id` is a UUID: safe as is).
pub fn rollup_dir(env: &str, dataset: &str, id: &str) -> String {
    format!("rollups/{}/{}/{id}", path_part(env), path_part(dataset))
}

fn path_part(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == name && !name.starts_with('.') {
        safe
    } else {
        format!("{safe}-{:08x}", crc32fast::hash(name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_safe_and_distinct() {
        assert_eq!(
            segment_dir("default", "api-gw.prod"),
            "segments/default/api-gw.prod"
        );
        let spaced = segment_dir("default", "my ds");
        let underscored = segment_dir("default", "my_ds");
        assert!(spaced.starts_with("segments/default/my_ds-"));
        assert_ne!(spaced, underscored);
        assert!(segment_dir("default", "..").contains("..-"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(validate("").is_err());
        assert!(validate("a\nb").is_err());
        assert!(validate(&"x".repeat(256)).is_err());
        assert!(validate("ok.name-1").is_ok());
    }
}

#[cfg(test)]
mod data_file_tests {
    use object_store::path::Path;

    use super::*;

    #[test]
    fn only_parquet_files_under_the_data_directories_are_immutable() {
        for yes in [
            "segments/default/a/3600/0190.parquet",
            "rollups/default/a/id/0190.parquet",
        ] {
            assert!(is_immutable_object(&Path::from(yes)), "{yes}");
        }
        for no in [
            "_manifest/log/00000000000000000001.json",
            "segments/default/a/notes.txt",
            "segmentsx/a.parquet",
            "other/a.parquet",
        ] {
            assert!(!is_immutable_object(&Path::from(no)), "{no}");
        }
    }
}
