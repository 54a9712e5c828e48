//! `lakitu config check`: every problem of a config file, not only the first. The validator
//! stops at the first error, so the check takes the line it names out of a copy of the text
//! and validates again, until the file passes or a problem cannot be set aside (a table
//! header, or a line already taken out). Each reported problem is one the relay would refuse.

use std::path::Path;

use super::{Config, ConfigError};

/// Most problems reported for one file.
pub const MAX_PROBLEMS: usize = 50;

impl Config {
    /// Every problem of `text` (named `origin` in messages), in the order found; empty when
    /// the relay would accept it.
    pub fn check_all(text: &str, origin: &Path) -> Vec<ConfigError> {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut problems = Vec::new();
        while problems.len() < MAX_PROBLEMS {
            let err = match Config::parse(&lines.join("\n"), origin) {
                Ok(_) => break,
                Err(e) => e,
            };
            let line = match &err {
                ConfigError::Invalid { line, .. } => *line,
                _ => 0,
            };
            problems.push(err);
            let Some(at) = line.checked_sub(1).filter(|&i| i < lines.len()) else {
                break;
            };
            let written = lines[at].trim_start();
            // A header stands for its whole table; a line already set aside would loop.
            if written.starts_with('[') || written.starts_with("#lakitu-check#") {
                break;
            }
            lines[at] = format!("#lakitu-check# {}", lines[at]);
        }
        problems.sort_by_key(|e| match e {
            ConfigError::Invalid { line, .. } => *line,
            _ => 0,
        });
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_bad_keys_are_three_problems_with_their_lines() {
        let text = "[api]\nlisten = \"0.0.0.0:1\"\n\n[gossip]\nping_secs = 0\n\n[interests]\ntopics = [\"a b\"]\n";
        let problems = Config::check_all(text, Path::new("c.toml"));
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{shown:#?}");
        assert!(shown[0].starts_with("c.toml:2: api.listen:"), "{shown:#?}");
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("c.toml:5: gossip.ping_secs:")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("c.toml:8: interests.topics")),
            "{shown:#?}"
        );
    }

    #[test]
    fn a_good_file_has_no_problem() {
        assert!(Config::check_all("[gossip]\nping_secs = 3\n", Path::new("c.toml")).is_empty());
    }
}
