//! A track as GeoJSON (RFC 7946): a `LineString` of the whole track and a `Point` per
//! position with its time, battery, speed and accuracy.

use serde_json::{json, Value};

use crate::payload::Location;
use crate::time::iso;

/// The track of `user`'s `device` (oldest first) as a GeoJSON `FeatureCollection`.
///
/// ```
/// use facteur_owntracks::{geojson, payload};
/// let payload::Payload::Location(l) =
///     payload::parse(br#"{"_type":"location","tst":0,"lat":45.0,"lon":4.5}"#).unwrap() else { panic!() };
/// let collection = geojson::track("alice", "phone", &[l]);
/// assert_eq!(collection["features"][0]["geometry"]["coordinates"][0], serde_json::json!([4.5, 45.0]));
/// ```
pub fn track(user: &str, device: &str, track: &[Location]) -> Value {
    let line: Vec<Value> = track.iter().map(|l| json!([l.lon, l.lat])).collect();
    let mut features = vec![json!({
        "type": "Feature",
        "geometry": { "type": "LineString", "coordinates": line },
        "properties": {
            "user": user,
            "device": device,
            "from": track.first().map(|l| iso(l.tst)),
            "to": track.last().map(|l| iso(l.tst)),
            "points": track.len(),
        },
    })];
    features.extend(track.iter().map(|l| {
        json!({
            "type": "Feature",
            "geometry": { "type": "Point", "coordinates": [l.lon, l.lat] },
            "properties": {
                "user": user,
                "device": device,
                "tst": l.tst,
                "isotst": iso(l.tst),
                "batt": l.batt,
                "vel": l.vel,
                "acc": l.acc,
                "alt": l.alt,
                "cog": l.cog,
            },
        })
    }));
    json!({ "type": "FeatureCollection", "features": features })
}
