//! The command lines of the subcommands whose every flag takes a value (`bench`, `eval`,
//! `default-head`): `--flag value` pairs and nothing else.

/// `raw` as `(flag, value)` pairs. `usage` is the error for `--help` or `-h`, and follows the
/// message for a flag without its value.
pub fn flag_values<'a>(raw: &'a [String], usage: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut pairs = Vec::new();
    let mut iter = raw.iter();
    while let Some(flag) = iter.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage.to_owned());
        }
        let value = iter
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        pairs.push((flag.as_str(), value.as_str()));
    }
    Ok(pairs)
}

/// The value of `flag` as a number.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: '{value}' is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_pair_with_their_values_and_help_or_a_missing_value_gives_the_usage() {
        let raw = strings(&["--runs", "2", "--only", "koch"]);
        assert_eq!(
            flag_values(&raw, "usage"),
            Ok(vec![("--runs", "2"), ("--only", "koch")])
        );
        assert_eq!(flag_values(&strings(&["-h"]), "usage"), Err("usage".into()));
        let missing = flag_values(&strings(&["--runs"]), "usage").unwrap_err();
        assert_eq!(missing, "--runs needs a value\nusage");
    }

    #[test]
    fn numbers_parse_and_anything_else_names_the_flag() {
        assert_eq!(number::<usize>("--runs", "3"), Ok(3));
        assert_eq!(number::<f64>("--target-far", "1e-4"), Ok(1e-4));
        let error = number::<usize>("--runs", "many").unwrap_err();
        assert_eq!(error, "--runs: 'many' is not a number");
    }
}
