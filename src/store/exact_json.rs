//! JSON text → a typed record with every `f64` exactly as written.
//!
//! The IndexedDB store reads records as one `JSON.stringify` text instead of property by
//! property (each crossing of the JS boundary costs a fraction of a millisecond there, so a
//! 200-epoch training run took a second to read). JavaScript writes the shortest text that
//! reads back as the same double, but serde_json's default float parser can land one ULP off
//! (its exact parser is a crate feature that would rebuild Burn's whole dependency tree). So the
//! numbers with a fraction or an exponent are read with the standard library's correctly
//! rounded parser instead, and integers stay with serde_json (exact up to `u64`/`i64`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// The key of the one-entry object that stands in for a float literal between the two passes.
const FLOAT_KEY: &str = "\u{0}f64";

/// Parses `json` into `T`, reading every non-integer number exactly.
pub fn from_str<T: DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
    let mut value: Value = serde_json::from_str(&wrap_floats(json))?;
    unwrap_floats(&mut value)?;
    serde_json::from_value(value)
}

/// Rewrites every number literal with a fraction or an exponent, outside strings, as
/// `{"\u0000f64":"<literal>"}`. A NUL cannot appear raw in a JSON string, so no key in the
/// input can be mistaken for the marker.
fn wrap_floats(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len() + json.len() / 4);
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            let literal = &json[start..i];
            if literal.contains(['.', 'e', 'E']) {
                out.push_str(&json[copied..start]);
                out.push_str("{\"\\u0000f64\":\"");
                out.push_str(literal);
                out.push_str("\"}");
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    out.push_str(&json[copied..]);
    out
}

fn unwrap_floats(value: &mut Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(unwrap_floats),
        Value::Object(map) => match float_literal(map) {
            Some(literal) => {
                let parsed: f64 = literal.parse().map_err(|_| invalid(literal))?;
                *value = Value::Number(Number::from_f64(parsed).ok_or_else(|| invalid(literal))?);
                Ok(())
            }
            None => map.values_mut().try_for_each(unwrap_floats),
        },
        _ => Ok(()),
    }
}

fn float_literal(map: &Map<String, Value>) -> Option<&str> {
    match (map.len(), map.get(FLOAT_KEY)) {
        (1, Some(Value::String(literal))) => Some(literal),
        _ => None,
    }
}

fn invalid(literal: &str) -> serde_json::Error {
    serde::de::Error::custom(format!("'{literal}' is not a finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        name: String,
        count: u64,
        loss: f64,
        maybe: Option<f64>,
        nested: Vec<Vec<f64>>,
    }

    #[test]
    fn floats_come_back_bit_for_bit() {
        // Doubles whose shortest text has 17 digits, where a fast parser can be one ULP off.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state);
            if !x.is_finite() {
                continue;
            }
            // Rust's `{:?}` writes the shortest round-tripping text, as `JSON.stringify` does
            // (in another notation for large and small exponents, which both parsers read).
            let text = format!("[{x:?}, {}]", 0.14 - 1e-17);
            let back: Vec<f64> = from_str(&text).unwrap();
            assert_eq!(back[0].to_bits(), x.to_bits(), "{text}");
        }
        let back: Vec<f64> = from_str("[0.13999999999999999, 1e-7, -2.5E+3]").unwrap();
        assert_eq!(back[0].to_bits(), 0.13999999999999999f64.to_bits());
        assert_eq!(back[1..], [1e-7, -2500.0]);
    }

    #[test]
    fn strings_integers_and_structure_are_untouched() {
        let text = r#"{"name":"a \"1.5\" \\ 2e3","count":18446744073709551615,"loss":0.25,
            "maybe":null,"nested":[[1.5,-0.0],[]]}"#;
        let row: Row = from_str(text).unwrap();
        assert_eq!(
            row,
            Row {
                name: "a \"1.5\" \\ 2e3".into(),
                count: u64::MAX,
                loss: 0.25,
                maybe: None,
                nested: vec![vec![1.5, -0.0], vec![]],
            }
        );
        let value: Value = from_str(r#"{"k":[1,2.0,"3.0"]}"#).unwrap();
        assert_eq!(value, serde_json::json!({"k": [1, 2.0, "3.0"]}));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(from_str::<Value>("{\"a\": 1.2.3}").is_err());
        assert!(from_str::<Value>("[1e999]").is_err());
        assert!(from_str::<Row>("{}").is_err());
    }
}
