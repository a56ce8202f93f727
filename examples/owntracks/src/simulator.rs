//! A simulator of OwnTracks phones: each device walks, rides or drives around its home
//! (a heading that turns gradually, a speed that varies, stops at times, a battery that
//! runs down), and publishes its positions as the app does: QoS 1, retained (the broker
//! keeps each device's last position), with an `lwt` payload as its will, and its home
//! as a `waypoint`.
//!
//! Tracks are reproducible: the same seed gives the same positions, which tests compare
//! with what the recorder stored.

use std::f64::consts::PI;
use std::time::Duration;

use facteur_client::{Client, Error, Messages, Options, QoS, Will};
use serde_json::json;

use crate::topic::device_topic;

/// Metres per degree of latitude.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// How a device moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// About 5 km/h, many stops.
    Walk,
    /// About 16 km/h.
    Bike,
    /// About 35 km/h in town.
    Car,
}

impl Mode {
    fn speed_kmh(self) -> f64 {
        match self {
            Self::Walk => 5.0,
            Self::Bike => 16.0,
            Self::Car => 35.0,
        }
    }
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Its user (the MQTT username).
    pub user: String,
    /// Its device name.
    pub device: String,
    /// The user's password.
    pub password: String,
    /// Its two-letter tracker id.
    pub tid: String,
    /// Where it starts and keeps returning to (latitude, longitude).
    pub home: (f64, f64),
    /// How it moves.
    pub mode: Mode,
}

/// The devices of the demo: alice (a phone and a bike tracker), bob (a car) and carol
/// (a phone), around Lyon.
pub fn demo_devices() -> Vec<DeviceSpec> {
    let spec = |user: &str, device: &str, tid: &str, home, mode| DeviceSpec {
        user: user.into(),
        device: device.into(),
        password: format!("{user}-secret"),
        tid: tid.into(),
        home,
        mode,
    };
    vec![
        spec("alice", "phone", "al", (45.7578, 4.8320), Mode::Walk),
        spec("alice", "bike", "ab", (45.7640, 4.8357), Mode::Bike),
        spec("bob", "car", "bo", (45.7485, 4.8467), Mode::Car),
        spec("carol", "phone", "ca", (45.7700, 4.8280), Mode::Walk),
    ]
}

/// One position as the simulator publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// Seconds since the epoch.
    pub tst: i64,
    /// Latitude (6 decimals, about 10 cm).
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Accuracy, metres.
    pub acc: i64,
    /// Altitude, metres.
    pub alt: i64,
    /// Speed, km/h.
    pub vel: i64,
    /// Course, degrees.
    pub cog: i64,
    /// Battery, percent.
    pub batt: i64,
    /// Tracker id.
    pub tid: String,
}

impl Fix {
    /// The OwnTracks JSON of this position.
    pub fn to_json(&self) -> String {
        json!({
            "_type": "location",
            "tid": self.tid,
            "tst": self.tst,
            "lat": self.lat,
            "lon": self.lon,
            "acc": self.acc,
            "alt": self.alt,
            "vel": self.vel,
            "cog": self.cog,
            "batt": self.batt,
            "bs": 1,
            "conn": "m",
            "m": 2,
            "created_at": self.tst,
        })
        .to_string()
    }
}

/// A device's movement: call [`Walker::next`] for each position.
#[derive(Debug, Clone)]
pub struct Walker {
    spec: DeviceSpec,
    rng: fastrand::Rng,
    lat: f64,
    lon: f64,
    heading: f64,
    battery: f64,
    stopped_for: u32,
    last_tst: Option<i64>,
}

impl Walker {
    /// A walker for `spec`, from its home, with this seed.
    pub fn new(spec: DeviceSpec, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let heading = rng.f64() * 2.0 * PI;
        let battery = 60.0 + rng.f64() * 40.0;
        Self {
            lat: spec.home.0,
            lon: spec.home.1,
            spec,
            rng,
            heading,
            battery,
            stopped_for: 0,
            last_tst: None,
        }
    }

    /// The device.
    pub fn spec(&self) -> &DeviceSpec {
        &self.spec
    }

    /// The position at `tst`, having moved since the previous one. A `tst` not after the
    /// previous one is moved to the second after it (one position per second at most).
    pub fn next(&mut self, tst: i64) -> Fix {
        let tst = match self.last_tst {
            Some(last) if tst <= last => last + 1,
            _ => tst,
        };
        let elapsed = self.last_tst.map_or(0, |last| tst - last) as f64;
        self.last_tst = Some(tst);
        let mut speed = 0.0;
        if self.stopped_for > 0 {
            self.stopped_for -= 1;
        } else if self.rng.f64() < 0.04 {
            self.stopped_for = self.rng.u32(1..4);
        } else {
            speed = self.spec.mode.speed_kmh() * (0.7 + 0.6 * self.rng.f64());
            self.turn();
            let metres = speed / 3.6 * elapsed;
            self.lat += metres * self.heading.cos() / METRES_PER_DEGREE;
            self.lon +=
                metres * self.heading.sin() / (METRES_PER_DEGREE * self.lat.to_radians().cos());
        }
        self.battery = (self.battery - elapsed / 600.0).max(5.0);
        Fix {
            tst,
            lat: round6(self.lat),
            lon: round6(self.lon),
            acc: self.rng.i64(4..25),
            alt: 170 + self.rng.i64(-6..7),
            vel: speed.round() as i64,
            cog: (self.heading.to_degrees().rem_euclid(360.0)).round() as i64 % 360,
            batt: self.battery.round() as i64,
            tid: self.spec.tid.clone(),
        }
    }

    /// Turns a little, and back towards home when far from it (3 km).
    fn turn(&mut self) {
        self.heading += (self.rng.f64() - 0.5) * 0.8;
        let north = (self.spec.home.0 - self.lat) * METRES_PER_DEGREE;
        let east = (self.spec.home.1 - self.lon) * METRES_PER_DEGREE * self.lat.to_radians().cos();
        if north.hypot(east) > 3000.0 {
            let home = east.atan2(north);
            let diff = (home - self.heading + PI).rem_euclid(2.0 * PI) - PI;
            self.heading += diff * 0.5;
        }
        self.heading = self.heading.rem_euclid(2.0 * PI);
    }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// A simulated phone connected to the broker.
#[derive(Debug)]
pub struct Phone {
    client: Client,
    /// Kept so that the connection is not stalled by unread messages (a phone subscribes
    /// to nothing, so none comes).
    _messages: Messages,
    topic: String,
    walker: Walker,
}

impl Phone {
    /// Connects as the device's user (`{user}-{device}` as client identifier), with the
    /// `lwt` payload as will (QoS 1, not retained, as the app), publishes the home
    /// waypoint (`owntracks/USER/DEVICE/waypoint`).
    ///
    /// # Errors
    /// The connection failed or was refused, or the broker refused the waypoint.
    pub async fn connect(mut options: Options, walker: Walker, now: i64) -> Result<Self, Error> {
        let spec = walker.spec().clone();
        let topic = device_topic(&spec.user, &spec.device);
        options.client_id = format!("{}-{}", spec.user, spec.device);
        options.username = Some(spec.user.clone());
        options.password = Some(spec.password.clone().into());
        let lwt = json!({ "_type": "lwt", "tst": now }).to_string();
        options.will = Some(Will::new(topic.clone(), lwt).qos(QoS::AtLeastOnce));
        let (client, messages) = Client::connect(options).await?;
        let waypoint = json!({
            "_type": "waypoint",
            "desc": "Home",
            "lat": spec.home.0,
            "lon": spec.home.1,
            "rad": 150,
            "tst": now,
        });
        client
            .publish(format!("{topic}/waypoint"), waypoint.to_string())
            .qos(QoS::AtLeastOnce)
            .await?;
        Ok(Self {
            client,
            _messages: messages,
            topic,
            walker,
        })
    }

    /// Publishes the next position, at `tst` (QoS 1, retained); the position published.
    ///
    /// # Errors
    /// The broker refused it (the user may not publish there) or the client ended.
    pub async fn publish_next(&mut self, tst: i64) -> Result<Fix, Error> {
        let fix = self.walker.next(tst);
        self.client
            .publish(self.topic.clone(), fix.to_json())
            .qos(QoS::AtLeastOnce)
            .retain(true)
            .await?;
        Ok(fix)
    }

    /// The device.
    pub fn spec(&self) -> &DeviceSpec {
        self.walker.spec()
    }

    /// The client, to publish something else.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Disconnects normally (no will).
    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}

/// Runs the simulation for `devices`: connects each (options from `base`), publishes
/// `history` positions a minute apart ending now, then one position of each device every
/// `every` until `stop` completes. Returns when stopped.
///
/// # Errors
/// A connection or a publication failed.
pub async fn run(
    base: Options,
    devices: Vec<DeviceSpec>,
    seed: u64,
    history: usize,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let now = crate::time::now();
    let mut phones = Vec::new();
    for (index, spec) in devices.into_iter().enumerate() {
        let walker = Walker::new(spec, seed.wrapping_add(index as u64));
        let mut phone = Phone::connect(base.clone(), walker, now).await?;
        let start = now - 60 * history as i64;
        for step in 0..history {
            phone.publish_next(start + 60 * step as i64).await?;
        }
        phones.push(phone);
    }
    tracing::info!(
        devices = phones.len(),
        history,
        "simulated devices connected"
    );
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticks.tick() => {
                for phone in &mut phones {
                    phone.publish_next(crate::time::now()).await?;
                }
            }
        }
    }
    for phone in &phones {
        phone.disconnect().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_are_reproducible_and_plausible() {
        for spec in demo_devices() {
            let mut a = Walker::new(spec.clone(), 7);
            let mut b = Walker::new(spec.clone(), 7);
            let mut previous: Option<Fix> = None;
            for step in 0..500 {
                let fix = a.next(1_000 + 60 * step);
                assert_eq!(fix, b.next(1_000 + 60 * step));
                assert!((5..=100).contains(&fix.batt) && (0..360).contains(&fix.cog));
                if let Some(p) = previous {
                    let metres = ((fix.lat - p.lat) * METRES_PER_DEGREE)
                        .hypot((fix.lon - p.lon) * METRES_PER_DEGREE * fix.lat.to_radians().cos());
                    let most = spec.mode.speed_kmh() * 1.3 / 3.6 * 60.0 + 1.0;
                    assert!(
                        metres <= most,
                        "{} moved {metres} m in a minute",
                        spec.device
                    );
                    assert!(fix.batt <= p.batt);
                }
                // Never far from home.
                assert!((fix.lat - spec.home.0).abs() < 0.1 && (fix.lon - spec.home.1).abs() < 0.1);
                previous = Some(fix);
            }
        }
    }

    #[test]
    fn one_position_per_second_at_most() {
        let mut w = Walker::new(demo_devices().remove(0), 1);
        assert_eq!(w.next(10).tst, 10);
        assert_eq!(w.next(10).tst, 11);
        assert_eq!(w.next(5).tst, 12);
        assert_eq!(w.next(20).tst, 20);
    }

    #[test]
    fn the_json_parses_back() {
        let fix = Walker::new(demo_devices().remove(2), 3).next(99);
        let crate::payload::Payload::Location(l) =
            crate::payload::parse(fix.to_json().as_bytes()).unwrap()
        else {
            panic!("not a location")
        };
        assert_eq!(
            (l.tst, l.lat, l.lon, l.batt, l.vel, l.tid.as_deref()),
            (
                99,
                fix.lat,
                fix.lon,
                Some(fix.batt),
                Some(fix.vel),
                Some("bo")
            )
        );
    }
}
