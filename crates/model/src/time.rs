//! Timestamps as the seed writes them: RFC 3339, UTC, milliseconds (`2026-01-02T03:04:05.678Z`).

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, UTC.
pub type Timestamp = DateTime<Utc>;

/// Formats like JavaScript's `Date.toISOString()`, which seed clients parse.
pub fn format_timestamp(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) mod serde_ts {
    use super::{Timestamp, format_timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        Timestamp::deserialize(d)
    }

    pub(crate) mod option {
        use super::{Timestamp, format_timestamp};
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<Timestamp>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format_timestamp(t)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Timestamp>, D::Error> {
            Option::<Timestamp>::deserialize(d)
        }
    }
}
