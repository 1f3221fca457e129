//! Helpers shared by both pools' option validation: whole numbers in range, and serde's parse
//! errors restated without quoting the offending value (it could be a password or a key).

use crate::error::PoolError;

/// `value` (or `default`) as a whole number within `min..=max`, else `INVALID_CONFIG`.
pub fn whole_number(
    name: &str,
    value: Option<f64>,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, PoolError> {
    let v = value.unwrap_or(default);
    if !v.is_finite() || v.fract() != 0.0 || v < min || v > max {
        return Err(PoolError::InvalidConfig(format!(
            "{name} must be a whole number from {min} to {max}, got {v}"
        )));
    }
    Ok(v)
}

/// Parses the options object, naming an unknown option and never quoting a value.
pub fn parse<T: serde::de::DeserializeOwned + Default>(json: &str) -> Result<T, PoolError> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json).map_err(|e| {
        let text = e.to_string();
        let message = match text
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            Some(field) => format!("unknown option '{field}'"),
            None if text.starts_with("invalid type") => {
                "an option has the wrong type (numbers must be numbers, names must be strings)"
                    .into()
            }
            None => format!("options: not a valid options object ({:?})", e.classify()),
        };
        PoolError::InvalidConfig(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)] // read only through Debug; the spec is about the errors
        size: Option<f64>,
    }

    #[test]
    fn whole_numbers_in_range_only() {
        assert_eq!(whole_number("n", None, 5.0, 0.0, 10.0).unwrap(), 5.0);
        for bad in [-1.0, 1.5, 11.0, f64::NAN] {
            assert_eq!(
                whole_number("n", Some(bad), 5.0, 0.0, 10.0)
                    .unwrap_err()
                    .code(),
                "INVALID_CONFIG"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_option_not_the_value() {
        let err = parse::<Sample>(r#"{"sise": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown option 'sise'"));
        let err = parse::<Sample>(r#"{"size": "hunter2"}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(parse::<Sample>("").is_ok());
    }
}
