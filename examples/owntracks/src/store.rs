//! SQLite persistence: every position with its user, device and timestamp, at most once per
//! (user, device, tst), and every other payload (transitions, waypoints, wills...).
//!
//! The primary key of `locations` is (user, device, tst): it refuses a second copy of a
//! point (a QoS 1 redelivery, a retained message replayed on subscription) and is the
//! index that answers "the track of a device between two instants". The table has
//! no rowid: the rows live in that index.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::payload::{self, Location, Payload};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS locations (
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    tst INTEGER NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    acc INTEGER,
    alt INTEGER,
    vel INTEGER,
    cog INTEGER,
    batt INTEGER,
    tid TEXT,
    trigger TEXT,
    conn TEXT,
    received INTEGER NOT NULL, -- milliseconds since the epoch
    json TEXT NOT NULL,
    PRIMARY KEY (user, device, tst)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    subtopic TEXT,
    kind TEXT NOT NULL,
    tst INTEGER,
    received INTEGER NOT NULL, -- milliseconds since the epoch
    json TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events (user, device, kind, tst, json);
CREATE INDEX IF NOT EXISTS events_by_device ON events (user, device, tst);
";

/// An error of the store: SQLite's, or a stored row that no longer parses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (the file cannot be opened or written...).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored payload is not a location any more (the file was edited by hand).
    #[error("stored row of {user}/{device} at {tst}: {why}")]
    Corrupt {
        /// User.
        user: String,
        /// Device.
        device: String,
        /// Timestamp.
        tst: i64,
        /// The parse error.
        why: String,
    },
    /// The blocking task running the query ended abnormally.
    #[error("the database task failed: {0}")]
    Task(String),
}

/// Whether a write stored something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New,
    /// Already there: nothing written.
    Duplicate,
}

/// A position of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePosition {
    /// User.
    pub user: String,
    /// Device.
    pub device: String,
    /// The position.
    pub location: Location,
    /// The device's will (`lwt`) arrived after this position: its connection was lost
    /// (or ended without a goodbye) and it has not published since.
    pub offline: bool,
}

/// A payload other than a position, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// User.
    pub user: String,
    /// Device.
    pub device: String,
    /// What followed the device in the topic (`event`, `waypoint`), if anything.
    pub subtopic: Option<String>,
    /// Its `_type`.
    pub kind: String,
    /// Its `tst`, if any.
    pub tst: Option<i64>,
    /// The whole payload, as received.
    pub json: String,
}

/// The database, shared by the recorder and the web server (clones share one
/// connection). Every query runs on tokio's blocking threads.
#[derive(Debug, Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database file and its tables.
    ///
    /// # Errors
    /// The file cannot be opened or is not a database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_connection(Connection::open(path)?)
    }

    /// A database in memory, gone when the last clone is dropped.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(connection: Connection) -> Result<Self, StoreError> {
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            job(&connection)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Stores a position of `user`'s `device`, unless one with the same `tst` is there.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn insert_location(
        &self,
        user: &str,
        device: &str,
        location: &Location,
    ) -> Result<Stored, StoreError> {
        let (user, device, l) = (user.to_owned(), device.to_owned(), location.clone());
        self.run(move |c| {
            let json = serde_json::Value::Object(l.raw.clone()).to_string();
            let changed = c.execute(
                "INSERT OR IGNORE INTO locations
                 (user, device, tst, lat, lon, acc, alt, vel, cog, batt, tid, trigger, conn, received, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    user, device, l.tst, l.lat, l.lon, l.acc, l.alt, l.vel, l.cog, l.batt, l.tid,
                    l.trigger, l.conn, crate::time::now_millis(), json
                ],
            )?;
            Ok(if changed == 0 { Stored::Duplicate } else { Stored::New })
        })
        .await
    }

    /// Stores a payload that is not a position, unless the same one (same user, device,
    /// type, tst and JSON) is there.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn insert_event(&self, event: StoredEvent) -> Result<Stored, StoreError> {
        self.run(move |c| {
            let changed = c.execute(
                "INSERT OR IGNORE INTO events (user, device, subtopic, kind, tst, received, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    event.user,
                    event.device,
                    event.subtopic,
                    event.kind,
                    event.tst,
                    crate::time::now_millis(),
                    event.json
                ],
            )?;
            Ok(if changed == 0 {
                Stored::Duplicate
            } else {
                Stored::New
            })
        })
        .await
    }

    /// The track of `user`'s `device` from `from` to `to` (seconds since the epoch, both
    /// included), oldest first.
    ///
    /// # Errors
    /// SQLite failed, or a row no longer parses.
    pub async fn track(
        &self,
        user: &str,
        device: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Location>, StoreError> {
        let (user, device) = (user.to_owned(), device.to_owned());
        self.run(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT tst, json FROM locations
                 WHERE user = ?1 AND device = ?2 AND tst BETWEEN ?3 AND ?4 ORDER BY tst",
            )?;
            let rows = statement.query_map(params![user, device, from, to], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut track = Vec::new();
            for row in rows {
                let (tst, json) = row?;
                track.push(location_from_row(&user, &device, tst, &json)?);
            }
            Ok(track)
        })
        .await
    }

    /// The last position of every device (of one user, or one device, if given), sorted by
    /// user and device, and whether the device's will came after it. (The will's own `tst`
    /// is when the phone connected, so the times compared are those of receipt.)
    ///
    /// # Errors
    /// SQLite failed, or a row no longer parses.
    pub async fn last(
        &self,
        user: Option<String>,
        device: Option<String>,
    ) -> Result<Vec<DevicePosition>, StoreError> {
        self.run(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT l.user, l.device, l.tst, l.json,
                        EXISTS (SELECT 1 FROM events e
                                WHERE e.user = l.user AND e.device = l.device
                                  AND e.kind = 'lwt' AND e.received >= l.received) AS offline
                 FROM locations l
                 JOIN (SELECT user, device, MAX(tst) AS tst FROM locations
                       WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR device = ?2)
                       GROUP BY user, device) m
                 ON l.user = m.user AND l.device = m.device AND l.tst = m.tst
                 ORDER BY l.user, l.device",
            )?;
            let rows = statement.query_map(params![user, device], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, bool>(4)?,
                ))
            })?;
            let mut last = Vec::new();
            for row in rows {
                let (user, device, tst, json, offline) = row?;
                let location = location_from_row(&user, &device, tst, &json)?;
                last.push(DevicePosition {
                    user,
                    device,
                    location,
                    offline,
                });
            }
            Ok(last)
        })
        .await
    }

    /// The other payloads of `user`'s `device` (transitions, waypoints, wills...), oldest
    /// first, at most `limit`.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn events(
        &self,
        user: &str,
        device: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (user, device) = (user.to_owned(), device.to_owned());
        self.run(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT subtopic, kind, tst, json FROM events WHERE user = ?1 AND device = ?2
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = statement.query_map(params![user, device, limit], |row| {
                Ok(StoredEvent {
                    user: user.clone(),
                    device: device.clone(),
                    subtopic: row.get(0)?,
                    kind: row.get(1)?,
                    tst: row.get(2)?,
                    json: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// How many positions are stored.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn location_count(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let count: Option<i64> = c
                .query_row("SELECT COUNT(*) FROM locations", [], |row| row.get(0))
                .optional()?;
            Ok(count.unwrap_or(0).max(0) as u64)
        })
        .await
    }
}

fn location_from_row(
    user: &str,
    device: &str,
    tst: i64,
    json: &str,
) -> Result<Location, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        user: user.to_owned(),
        device: device.to_owned(),
        tst,
        why,
    };
    match payload::parse(json.as_bytes()) {
        Ok(Payload::Location(location)) => Ok(location),
        Ok(Payload::Event { kind, .. }) => Err(corrupt(format!("a {kind}, not a location"))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(tst: i64, lat: f64) -> Location {
        let json = format!(r#"{{"_type":"location","tst":{tst},"lat":{lat},"lon":2.5,"batt":50}}"#);
        match payload::parse(json.as_bytes()) {
            Ok(Payload::Location(l)) => l,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn duplicates_range_and_last() {
        let store = Store::in_memory().unwrap();
        for tst in [30, 10, 20] {
            let stored = store
                .insert_location("a", "p", &location(tst, tst as f64))
                .await
                .unwrap();
            assert_eq!(stored, Stored::New);
        }
        // Same (user, device, tst): refused even with other values.
        assert_eq!(
            store
                .insert_location("a", "p", &location(20, 1.0))
                .await
                .unwrap(),
            Stored::Duplicate
        );
        // Same tst on another device or user: new.
        assert_eq!(
            store
                .insert_location("a", "q", &location(20, 1.0))
                .await
                .unwrap(),
            Stored::New
        );
        assert_eq!(
            store
                .insert_location("b", "p", &location(20, 1.0))
                .await
                .unwrap(),
            Stored::New
        );
        let track = store.track("a", "p", 10, 20).await.unwrap();
        assert_eq!(
            track.iter().map(|l| (l.tst, l.lat)).collect::<Vec<_>>(),
            [(10, 10.0), (20, 20.0)]
        );
        assert!(store.track("a", "p", 31, 40).await.unwrap().is_empty());
        let last = store.last(None, None).await.unwrap();
        let summary: Vec<_> = last
            .iter()
            .map(|d| (d.user.as_str(), d.device.as_str(), d.location.tst))
            .collect();
        assert_eq!(summary, [("a", "p", 30), ("a", "q", 20), ("b", "p", 20)]);
        assert_eq!(
            store
                .last(Some("a".into()), Some("q".into()))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.location_count().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn the_range_query_uses_the_primary_key() {
        let store = Store::in_memory().unwrap();
        let plan = store
            .run(|c| {
                let mut s = c.prepare(
                    "EXPLAIN QUERY PLAN SELECT tst, json FROM locations
                     WHERE user = 'a' AND device = 'p' AND tst BETWEEN 1 AND 2 ORDER BY tst",
                )?;
                let rows = s.query_map([], |row| row.get::<_, String>(3))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
            })
            .await
            .unwrap();
        assert!(
            plan.contains(
                "SEARCH locations USING PRIMARY KEY (user=? AND device=? AND tst>? AND tst<?)"
            ),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn events_kept_once() {
        let store = Store::in_memory().unwrap();
        let event = StoredEvent {
            user: "a".into(),
            device: "p".into(),
            subtopic: Some("event".into()),
            kind: "transition".into(),
            tst: Some(5),
            json: r#"{"_type":"transition","tst":5,"event":"enter"}"#.into(),
        };
        assert_eq!(
            store.insert_event(event.clone()).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            store.insert_event(event.clone()).await.unwrap(),
            Stored::Duplicate
        );
        assert_eq!(store.events("a", "p", 10).await.unwrap(), [event]);
    }

    #[tokio::test]
    async fn a_file_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        Store::open(&path)
            .unwrap()
            .insert_location("a", "p", &location(1, 1.0))
            .await
            .unwrap();
        let again = Store::open(&path).unwrap();
        assert_eq!(again.track("a", "p", 0, 10).await.unwrap().len(), 1);
    }
}
