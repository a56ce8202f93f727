//! OwnTracks JSON payloads: what a phone publishes to `owntracks/USER/DEVICE`.
//!
//! The types the recorder meets are `location`, `transition`, `waypoint` (and `waypoints`)
//! and `lwt`; any other `_type` is kept as it came. Every field the recorder does not use
//! is kept too: the whole object is stored beside the columns read from it.

use serde_json::{Map, Value};

/// A payload, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `_type: location`: a position.
    Location(Location),
    /// Any other type (`transition`, `waypoint`, `waypoints`, `lwt`, `card`, ...): its
    /// `_type`, its `tst` if it has one, and the whole object.
    Event {
        /// The `_type`.
        kind: String,
        /// Its timestamp (`tst`, seconds since the epoch), if any.
        tst: Option<i64>,
        /// The whole JSON object.
        raw: Map<String, Value>,
    },
}

/// A position, as a `_type: location` payload gives it. Optional fields the phone did not
/// send are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Seconds since the epoch (UTC) when the position was fixed.
    pub tst: i64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy, metres.
    pub acc: Option<i64>,
    /// Altitude, metres.
    pub alt: Option<i64>,
    /// Speed, km/h.
    pub vel: Option<i64>,
    /// Course over ground, degrees.
    pub cog: Option<i64>,
    /// Battery level, percent.
    pub batt: Option<i64>,
    /// Tracker id: two characters shown on the map.
    pub tid: Option<String>,
    /// Trigger (`p` ping, `c` circular region, `u` manual, `t` timer...).
    pub trigger: Option<String>,
    /// Connectivity (`w` wifi, `m` mobile, `o` offline).
    pub conn: Option<String>,
    /// The whole JSON object, unknown fields included.
    pub raw: Map<String, Value>,
}

/// Why a payload is not one the recorder can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// An object without a string `_type`.
    #[error("no `_type` string")]
    NoType,
    /// A location without a usable field.
    #[error("location: {0}")]
    BadLocation(String),
}

/// Parses a payload.
///
/// ```
/// use facteur_owntracks::payload::{parse, Payload};
/// let p = parse(br#"{"_type":"location","tst":1700000000,"lat":48.85,"lon":2.35,"batt":80,"x":1}"#).unwrap();
/// let Payload::Location(l) = p else { panic!() };
/// assert_eq!((l.tst, l.lat, l.lon, l.batt), (1700000000, 48.85, 2.35, Some(80)));
/// assert_eq!(l.raw["x"], 1); // unknown fields are kept
/// ```
///
/// # Errors
/// A [`PayloadError`] saying what is wrong: never a panic, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Value::Object(raw) = value else {
        return Err(PayloadError::NotObject);
    };
    let kind = match raw.get("_type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(PayloadError::NoType),
    };
    if kind != "location" {
        let tst = raw.get("tst").and_then(integer);
        return Ok(Payload::Event { kind, tst, raw });
    }
    let bad = |why: &str| PayloadError::BadLocation(why.to_owned());
    let tst = raw
        .get("tst")
        .and_then(integer)
        .ok_or_else(|| bad("no integer `tst`"))?;
    let lat = raw
        .get("lat")
        .and_then(Value::as_f64)
        .filter(|v| (-90.0..=90.0).contains(v))
        .ok_or_else(|| bad("no `lat` between -90 and 90"))?;
    let lon = raw
        .get("lon")
        .and_then(Value::as_f64)
        .filter(|v| (-180.0..=180.0).contains(v))
        .ok_or_else(|| bad("no `lon` between -180 and 180"))?;
    let int = |key: &str| raw.get(key).and_then(integer);
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(Payload::Location(Location {
        tst,
        lat,
        lon,
        acc: int("acc"),
        alt: int("alt"),
        vel: int("vel"),
        cog: int("cog"),
        batt: int("batt"),
        tid: text("tid"),
        trigger: text("t"),
        conn: text("conn"),
        raw,
    }))
}

/// An integer, also from a float with no fraction or a numeric string (some OwnTracks
/// versions send `"tst":"1700000000"`).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Location {
    /// The JSON object the HTTP API returns for this position of `user`'s `device`: the
    /// stored object with `user`, `device` and `topic` added, as OwnTracks Recorder does.
    pub fn to_api(&self, user: &str, device: &str) -> Value {
        let mut object = self.raw.clone();
        object.insert("_type".into(), "location".into());
        object.insert("tst".into(), self.tst.into());
        object.insert("lat".into(), self.lat.into());
        object.insert("lon".into(), self.lon.into());
        object.insert("user".into(), user.into());
        object.insert("device".into(), device.into());
        object.insert("topic".into(), format!("owntracks/{user}/{device}").into());
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_with_every_field() {
        let json = br#"{"_type":"location","tid":"al","tst":1700000000,"lat":45.5,"lon":4.85,
            "acc":12,"alt":170,"vel":5,"cog":90,"batt":77,"t":"u","conn":"w","BSSID":"x"}"#;
        let Ok(Payload::Location(l)) = parse(json) else {
            panic!("not a location")
        };
        assert_eq!(l.tid.as_deref(), Some("al"));
        assert_eq!(
            (l.acc, l.alt, l.vel, l.cog, l.batt),
            (Some(12), Some(170), Some(5), Some(90), Some(77))
        );
        assert_eq!(
            (l.trigger.as_deref(), l.conn.as_deref()),
            (Some("u"), Some("w"))
        );
        assert_eq!(l.raw["BSSID"], "x");
    }

    #[test]
    fn other_types_are_kept() {
        for kind in ["transition", "waypoint", "lwt", "card", "something-new"] {
            let json = format!(r#"{{"_type":"{kind}","tst":5,"desc":"home"}}"#);
            let Ok(Payload::Event { kind: k, tst, raw }) = parse(json.as_bytes()) else {
                panic!("{kind} not an event")
            };
            assert_eq!((k.as_str(), tst), (kind, Some(5)));
            assert_eq!(raw["desc"], "home");
        }
    }

    #[test]
    fn string_and_float_timestamps() {
        let p = parse(br#"{"_type":"location","tst":"17","lat":1,"lon":2.0}"#).unwrap();
        assert!(matches!(p, Payload::Location(Location { tst: 17, .. })));
        let p = parse(br#"{"_type":"location","tst":18.0,"lat":1,"lon":2}"#).unwrap();
        assert!(matches!(p, Payload::Location(Location { tst: 18, .. })));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(matches!(parse(b"not json"), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse(b"\xff\xfe"), Err(PayloadError::NotJson(_))));
        assert_eq!(parse(b"[1,2]"), Err(PayloadError::NotObject));
        assert_eq!(parse(br#"{"lat":1}"#), Err(PayloadError::NoType));
        assert_eq!(parse(br#"{"_type":5}"#), Err(PayloadError::NoType));
        for bad in [
            r#"{"_type":"location","lat":1,"lon":2}"#,
            r#"{"_type":"location","tst":1.5,"lat":1,"lon":2}"#,
            r#"{"_type":"location","tst":1,"lat":91,"lon":2}"#,
            r#"{"_type":"location","tst":1,"lat":1,"lon":"east"}"#,
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(PayloadError::BadLocation(_))),
                "{bad}"
            );
        }
    }
}
