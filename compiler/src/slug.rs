//! [`Slug`]: the one name type for every DNS-label-like name (organizations, workspaces,
//! projects, clusters, plans, CronJobs, Functions), with one set of rules used by the
//! compiler's checks and by the server's API alike.
//!
//! The rules are those of a DNS-1123 label (what Kubernetes names namespaces and most objects
//! with): 1 to 63 lowercase ASCII letters, digits and `-`, starting and ending with a letter
//! or digit. Some names must be shorter because something is built from them (an
//! organization's slug goes into `ws-<org>-<workspace>`); [`Slug::with_max`] checks those.

use std::fmt;
use std::str::FromStr;

/// A DNS-1123 label: 1 to [`Slug::MAX`] lowercase letters, digits and `-`, starting and
/// ending with a letter or digit. Made only through [`Slug::new`], [`Slug::with_max`],
/// `TryFrom`, `FromStr` or deserialization, so holding one means the rules hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Why a name is not a [`Slug`]; its `Display` is a plain reason a caller puts after the
/// field's path ("metadata.name: must not be empty").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("must be at most {max} characters, is {len}")]
    TooLong {
        /// The most allowed here.
        max: usize,
        /// The name's length.
        len: usize,
    },
    /// The name has a character other than a lowercase letter, a digit or `-`.
    #[error("may contain only lowercase letters, digits and '-'")]
    Character,
    /// The name starts or ends with `-`.
    #[error("must start and end with a letter or digit")]
    Edge,
}

impl Slug {
    /// The longest DNS label.
    pub const MAX: usize = 63;

    /// `value` as a slug of at most [`Slug::MAX`] characters.
    pub fn new(value: &str) -> Result<Self, SlugError> {
        Self::with_max(value, Self::MAX)
    }

    /// `value` as a slug of at most `max` characters (never more than [`Slug::MAX`]), for
    /// names that other names are built from.
    pub fn with_max(value: &str, max: usize) -> Result<Self, SlugError> {
        Self::check(value, max)?;
        Ok(Self(value.to_owned()))
    }

    /// Whether `value` is a slug of at most `max` characters (never more than
    /// [`Slug::MAX`]), without keeping it.
    pub fn check(value: &str, max: usize) -> Result<(), SlugError> {
        let max = max.min(Self::MAX);
        if value.is_empty() {
            return Err(SlugError::Empty);
        }
        if value.len() > max {
            return Err(SlugError::TooLong {
                max,
                len: value.len(),
            });
        }
        let bytes = value.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        if !bytes.iter().all(allowed) {
            return Err(SlugError::Character);
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err(SlugError::Edge);
        }
        Ok(())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<&str> for Slug {
    type Error = SlugError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for Slug {
    type Error = SlugError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::check(&value, Self::MAX)?;
        Ok(Self(value))
    }
}

impl FromStr for Slug {
    type Err = SlugError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Slug> for String {
    fn from(slug: Slug) -> Self {
        slug.0
    }
}

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::try_from(value).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Slug {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Slug".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": Self::MAX,
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_slugs() {
        for ok in ["a", "acme", "web-1", "a-b-c", "a--b", &"a".repeat(63)] {
            let slug = Slug::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(slug.as_str(), ok);
            assert_eq!(slug.to_string(), ok);
            assert_eq!(slug.as_ref(), ok);
        }
    }

    // The server's API refused names starting with a digit; the compiler (and Kubernetes)
    // accept them, and the compiler's rules win.
    #[test]
    fn a_leading_digit_is_allowed() {
        assert_eq!(Slug::new("1web").map(String::from), Ok("1web".to_owned()));
        assert!(Slug::new("2024").is_ok());
    }

    #[test]
    fn each_broken_rule_has_its_reason() {
        assert_eq!(Slug::new(""), Err(SlugError::Empty));
        assert_eq!(
            Slug::new(&"a".repeat(64)),
            Err(SlugError::TooLong { max: 63, len: 64 })
        );
        assert_eq!(Slug::new("Acme"), Err(SlugError::Character));
        assert_eq!(Slug::new("a_b"), Err(SlugError::Character));
        assert_eq!(Slug::new("a.b"), Err(SlugError::Character));
        assert_eq!(Slug::new("é"), Err(SlugError::Character));
        assert_eq!(Slug::new("a\nb"), Err(SlugError::Character));
        assert_eq!(Slug::new("-acme"), Err(SlugError::Edge));
        assert_eq!(Slug::new("acme-"), Err(SlugError::Edge));
        assert_eq!(Slug::new("-"), Err(SlugError::Edge));
        assert_eq!(
            SlugError::TooLong { max: 30, len: 31 }.to_string(),
            "must be at most 30 characters, is 31"
        );
    }

    #[test]
    fn a_shorter_limit_applies_and_never_a_longer_one() {
        assert!(Slug::with_max("abcd", 4).is_ok());
        assert_eq!(
            Slug::with_max("abcde", 4),
            Err(SlugError::TooLong { max: 4, len: 5 })
        );
        assert_eq!(
            Slug::with_max(&"a".repeat(64), 100),
            Err(SlugError::TooLong { max: 63, len: 64 })
        );
    }

    #[test]
    fn every_way_in_checks_the_rules() {
        assert_eq!("web".parse::<Slug>().map(String::from), Ok("web".into()));
        assert!("Web".parse::<Slug>().is_err());
        assert!(Slug::try_from("web").is_ok());
        assert!(Slug::try_from("web-".to_owned()).is_err());
        let slug: Slug = serde_json::from_str("\"acme\"").expect("a slug");
        assert_eq!(serde_json::to_string(&slug).expect("json"), "\"acme\"");
        let refused = serde_json::from_str::<Slug>("\"ac me\"").expect_err("not a slug");
        assert!(
            refused.to_string().contains("may contain only"),
            "{refused}"
        );
    }
}
