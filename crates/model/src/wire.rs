//! Bounds on numbers as they arrive in a JSON body or a query string, enforced while
//! deserializing (`#[serde(deserialize_with = ...)]`): a value out of bounds is refused like a value
//! of the wrong type. The OpenAPI document states the same bounds.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

use crate::time::TIME_MAX;

/// The largest counter accepted: counters are stored as SQL integers (`i64`).
pub const COUNTER_MAX: u64 = i64::MAX as u64;

fn time_in_range<E: Error>(t: i64) -> Result<i64, E> {
    if (0..=TIME_MAX).contains(&t) {
        Ok(t)
    } else {
        Err(E::custom(format!(
            "time {t} is outside 0..={TIME_MAX} (Unix seconds)"
        )))
    }
}

fn counter_in_range<E: Error>(v: u64) -> Result<u64, E> {
    if v <= COUNTER_MAX {
        Ok(v)
    } else {
        Err(E::custom(format!("{v} is larger than {COUNTER_MAX}")))
    }
}

/// Unix seconds in `0..=TIME_MAX`.
pub fn unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    time_in_range(i64::deserialize(d)?)
}

/// An optional [`unix_time`] (use with `#[serde(default)]`).
pub fn opt_unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<i64>::deserialize(d)?
        .map(time_in_range)
        .transpose()
}

/// A counter in `0..=COUNTER_MAX`.
pub fn counter<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    counter_in_range(u64::deserialize(d)?)
}

/// An optional [`counter`] (use with `#[serde(default)]`).
pub fn opt_counter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(counter_in_range)
        .transpose()
}

/// A string of at most `MAX` characters (as JSON Schema's `maxLength` counts them).
pub fn string_max<'de, D: Deserializer<'de>, const MAX: usize>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.chars().count() > MAX {
        return Err(D::Error::custom(format!(
            "a string of {} characters, at most {MAX} allowed",
            s.chars().count()
        )));
    }
    Ok(s)
}

/// An optional [`string_max`] (use with `#[serde(default)]`).
pub fn opt_string_max<'de, D: Deserializer<'de>, const MAX: usize>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.chars().count() > MAX => Err(D::Error::custom(format!(
            "a string of {} characters, at most {MAX} allowed",
            s.chars().count()
        ))),
        o => Ok(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_unix_time")]
        at: Option<i64>,
        #[serde(default, deserialize_with = "opt_counter")]
        n: Option<u64>,
    }

    fn parse(s: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn bounds_are_enforced_while_parsing() {
        assert_eq!(parse("{}").unwrap().at, None);
        assert_eq!(parse(r#"{"at": null}"#).unwrap().at, None);
        assert_eq!(parse(r#"{"at": 0}"#).unwrap().at, Some(0));
        assert_eq!(
            parse(&format!(r#"{{"at": {TIME_MAX}}}"#)).unwrap().at,
            Some(TIME_MAX)
        );
        assert!(parse(r#"{"at": -1}"#).is_err());
        assert!(parse(&format!(r#"{{"at": {}}}"#, TIME_MAX + 1)).is_err());
        assert_eq!(
            parse(&format!(r#"{{"n": {COUNTER_MAX}}}"#)).unwrap().n,
            Some(COUNTER_MAX)
        );
        assert!(parse(&format!(r#"{{"n": {}}}"#, COUNTER_MAX + 1)).is_err());
    }
}
