//! The configuration file: `Config::parse` never panics on any text, and every error names a
//! line inside the file.
#![no_main]
use std::path::Path;

use lakitu::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("/fuzz/config.toml")) {
        Err(ConfigError::Invalid { line, .. }) => {
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "line {line}");
        }
        Err(_) | Ok(_) => {}
    }
});
