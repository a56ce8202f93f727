//! Simulator → broker (password file, ACL `pattern readwrite owntracks/%u/#`) → recorder →
//! SQLite → HTTP API, checked position by position; the ACL keeps users out of each
//! other's topics; duplicates, malformed payloads and a recorder restart.

mod common;

use common::{get, get_json, options_as, App, RECORDER_PASSWORD};
use facteur_client::{Error, QoS, ReasonCode};
use facteur_owntracks::broker_setup::RECORDER_USER;
use facteur_owntracks::simulator::Fix;
use serde_json::{json, Value};

const BASE: i64 = 1_700_000_000;
const POINTS: usize = 25;

/// The fields the simulator sets, as the API must give them back.
fn expected(user: &str, device: &str, fix: &Fix) -> Value {
    json!({
        "_type": "location", "user": user, "device": device,
        "topic": format!("owntracks/{user}/{device}"),
        "tst": fix.tst, "lat": fix.lat, "lon": fix.lon, "acc": fix.acc, "alt": fix.alt,
        "vel": fix.vel, "cog": fix.cog, "batt": fix.batt, "tid": fix.tid,
        "bs": 1, "conn": "m", "m": 2, "created_at": fix.tst,
        "isotst": facteur_owntracks::time::iso(fix.tst),
    })
}

/// As [`expected`], as `/api/0/last` gives it.
fn expected_last(user: &str, device: &str, fix: &Fix, offline: bool) -> Value {
    let mut value = expected(user, device, fix);
    value["offline"] = offline.into();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_tracks_reach_the_api_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let mqtt = broker.local_addrs()[0];
    let database = dir.path().join("owntracks.sqlite");
    let app = App::start(mqtt, &database, "recorder").await;

    // Four devices of three users, 25 positions each, a minute apart.
    let mut phones = common::phones(mqtt, BASE).await;
    let mut published: Vec<(String, String, Vec<Fix>)> = Vec::new();
    for phone in &mut phones {
        let (user, device) = (phone_user(phone), phone_device(phone));
        let mut fixes = Vec::new();
        for step in 0..POINTS {
            fixes.push(phone.publish_next(BASE + 60 * step as i64).await.unwrap());
        }
        published.push((user, device, fixes));
    }
    let total = (published.len() * POINTS) as u64;
    let counters = app
        .wait_for("every position stored", |c| {
            c.locations == total && c.events == 4
        })
        .await;
    assert_eq!((counters.duplicates, counters.malformed), (0, 0));

    // Each track, exactly, oldest first; the range bounds are included.
    for (user, device, fixes) in &published {
        let to = BASE + 60 * (POINTS as i64 - 1);
        let body = get_json(
            app.http,
            &format!("/api/0/locations?user={user}&device={device}&from={BASE}&to={to}"),
        )
        .await;
        assert_eq!(body["count"], POINTS);
        let want: Vec<Value> = fixes.iter().map(|f| expected(user, device, f)).collect();
        assert_eq!(body["data"], Value::Array(want), "{user}/{device}");
        // A sub-range, with ISO dates.
        let from = facteur_owntracks::time::iso(BASE + 60 * 5);
        let to = facteur_owntracks::time::iso(BASE + 60 * 9);
        let body = get_json(
            app.http,
            &format!("/api/0/locations?user={user}&device={device}&from={from}&to={to}"),
        )
        .await;
        let tsts: Vec<i64> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["tst"].as_i64().unwrap())
            .collect();
        assert_eq!(tsts, (5..=9).map(|i| BASE + 60 * i).collect::<Vec<_>>());
        // GeoJSON: the line, then a point per position.
        let geo = get_json(
            app.http,
            &format!(
                "/api/0/locations?user={user}&device={device}&from={BASE}&to={}&format=geojson",
                BASE + 86_400
            ),
        )
        .await;
        let line: Vec<Value> = fixes.iter().map(|f| json!([f.lon, f.lat])).collect();
        assert_eq!(geo["type"], "FeatureCollection");
        assert_eq!(
            geo["features"][0]["geometry"],
            json!({"type": "LineString", "coordinates": line})
        );
        assert_eq!(geo["features"].as_array().unwrap().len(), POINTS + 1);
        assert_eq!(
            geo["features"][POINTS]["properties"]["batt"],
            fixes[POINTS - 1].batt
        );
    }

    // The last position of every device, sorted by user and device.
    let last = get_json(app.http, "/api/0/last").await;
    let mut want: Vec<Value> = published
        .iter()
        .map(|(u, d, f)| expected_last(u, d, f.last().unwrap(), false))
        .collect();
    want.sort_by_key(|p| {
        (
            p["user"].as_str().unwrap().to_owned(),
            p["device"].as_str().unwrap().to_owned(),
        )
    });
    assert_eq!(last, Value::Array(want));
    assert_eq!(
        get_json(app.http, "/api/0/list").await,
        json!({"results": ["alice", "bob", "carol"]})
    );
    assert_eq!(
        get_json(app.http, "/api/0/list?user=alice").await,
        json!({"results": ["bike", "phone"]})
    );

    // Bad requests get a 400 and a reason.
    for bad in [
        "/api/0/locations?device=phone",
        "/api/0/locations?user=alice&device=phone&from=yesterday",
        "/api/0/locations?user=alice&device=phone&from=20&to=10",
        "/api/0/locations?user=alice&device=phone&format=kml",
    ] {
        let (status, body) = get(app.http, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(),
            "{bad}: {body}"
        );
    }

    // The ACL: bob may not publish into alice's topics, nor may the recorder.
    let (bob, _bob_messages) =
        facteur_client::Client::connect(options_as(mqtt, "bob", "bob-secret"))
            .await
            .unwrap();
    let forged =
        json!({"_type": "location", "tst": BASE + 99_999, "lat": 1.0, "lon": 1.0}).to_string();
    let refused = bob
        .publish("owntracks/alice/phone", forged.clone())
        .qos(QoS::AtLeastOnce)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::PublishRefused {
                reason: ReasonCode::NotAuthorized,
                ..
            })
        ),
        "{refused:?}"
    );
    let (recorder_client, _m) =
        facteur_client::Client::connect(options_as(mqtt, RECORDER_USER, RECORDER_PASSWORD))
            .await
            .unwrap();
    let refused = recorder_client
        .publish("owntracks/alice/phone", forged.clone())
        .qos(QoS::AtLeastOnce)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::PublishRefused {
                reason: ReasonCode::NotAuthorized,
                ..
            })
        ),
        "{refused:?}"
    );
    // A wrong password is refused at CONNECT.
    let wrong = facteur_client::Client::connect(options_as(mqtt, "alice", "bob-secret")).await;
    assert!(matches!(wrong, Err(Error::Refused { .. })), "{wrong:?}");
    // Bob's own topic is his: that one is stored, after the refused ones had their chance.
    let own =
        json!({"_type": "location", "tst": BASE + 99_999, "lat": 2.0, "lon": 2.0}).to_string();
    bob.publish("owntracks/bob/phone", own)
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    app.wait_for("bob's own position", |c| c.locations == total + 1)
        .await;
    let alice = get_json(
        app.http,
        &format!(
            "/api/0/locations?user=alice&device=phone&from={BASE}&to={}",
            BASE + 200_000
        ),
    )
    .await;
    assert_eq!(alice["count"], POINTS, "nothing forged was stored: {alice}");

    // A redelivery of a stored position is not stored twice; a malformed payload is
    // counted, and the recorder goes on.
    let alice_phone = &phones[0];
    let again = published[0].2.last().unwrap().to_json();
    alice_phone
        .client()
        .publish("owntracks/alice/phone", again)
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    app.wait_for("the duplicate", |c| c.duplicates == 1).await;
    for junk in [
        "{not json",
        "[1]",
        r#"{"lat":1}"#,
        r#"{"_type":"location","tst":5}"#,
    ] {
        alice_phone
            .client()
            .publish("owntracks/alice/phone", junk)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let unknown = json!({"_type": "brand-new", "tst": BASE, "x": [1, 2]}).to_string();
    alice_phone
        .client()
        .publish("owntracks/alice/phone", unknown)
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let counters = app
        .wait_for("malformed payloads and the unknown type", |c| {
            c.malformed == 4 && c.events == 5
        })
        .await;
    assert_eq!((counters.locations, counters.duplicates), (total + 1, 1));
    let stats = get_json(app.http, "/api/0/stats").await;
    assert_eq!(stats["malformed"], 4);

    // A recorder restart keeps what it stored and takes its broker session over: a
    // position published while no recorder ran was queued there and is stored now; the
    // retained last positions the broker sends the new subscription (one per simulated
    // device: bob's own message above was not retained; the device that moved meanwhile
    // is replayed at its new position, which came through the session too) are
    // duplicates, not new rows.
    app.stop().await;
    let while_stopped = phones[1].publish_next(BASE + 7_200).await.unwrap();
    published[1].2.push(while_stopped);
    let app = App::start(mqtt, &database, "recorder").await;
    let counters = app
        .wait_for(
            "the position sent while stopped, the retained replays",
            |c| c.locations == 1 && c.duplicates == 4,
        )
        .await;
    assert_eq!(
        (counters.locations, counters.duplicates),
        (1, 4),
        "{counters:?}"
    );
    for (user, device, fixes) in &published {
        let path = format!(
            "/api/0/locations?user={user}&device={device}&from={BASE}&to={}",
            BASE + 86_400
        );
        let body = get_json(app.http, &path).await;
        let want: Vec<Value> = fixes.iter().map(|f| expected(user, device, f)).collect();
        assert_eq!(
            body["data"],
            Value::Array(want),
            "{user}/{device} after the restart"
        );
    }
    // And it records again.
    phones[2].publish_next(BASE + 100_000).await.unwrap();
    app.wait_for("a position after the restart", |c| c.locations == 2)
        .await;

    // A phone whose will the broker publishes (5.0 DISCONNECT 0x04, as on a lost
    // connection): the lwt is recorded as an event and announced.
    let carol = phones.pop().unwrap();
    carol
        .client()
        .disconnect_with(ReasonCode::DisconnectWithWillMessage, None)
        .await
        .unwrap();
    app.wait_for("carol's will", |c| c.events == 1).await;
    let last = get_json(app.http, "/api/0/last").await;
    let offline: Vec<(&str, bool)> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap(),
                p["offline"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        offline,
        [
            ("owntracks/alice/bike", false),
            ("owntracks/alice/phone", false),
            ("owntracks/bob/car", false),
            ("owntracks/bob/phone", false),
            ("owntracks/carol/phone", true),
        ]
    );

    app.stop().await;
    broker.shutdown().await;
}

fn phone_user(phone: &facteur_owntracks::simulator::Phone) -> String {
    phone.spec().user.clone()
}

fn phone_device(phone: &facteur_owntracks::simulator::Phone) -> String {
    phone.spec().device.clone()
}

/// The recorder's session outlives a lost connection: positions published while it was
/// cut off are delivered when the client reconnects, each stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_missed_across_a_cut_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let mqtt = broker.local_addrs()[0];
    let proxy = common::Proxy::start(mqtt).await;
    let mut options = options_as(proxy.addr, RECORDER_USER, RECORDER_PASSWORD);
    options.reconnect = facteur_client::Reconnect::default();
    let options = facteur_owntracks::recorder::options(options, "recorder");
    let app = App::start_with(options, &dir.path().join("t.sqlite")).await;
    let mut phones = common::phones(mqtt, BASE).await;
    let phone = &mut phones[1];
    let mut fixes = vec![phone.publish_next(BASE).await.unwrap()];
    app.wait_for("the first position", |c| c.locations == 1)
        .await;

    proxy.cut();
    for step in 1..=5 {
        fixes.push(phone.publish_next(BASE + step).await.unwrap());
    }
    proxy.wait_accepted(2).await;
    let counters = app
        .wait_for("the positions queued while cut off", |c| c.locations == 6)
        .await;
    assert_eq!(counters.malformed, 0);
    let body = get_json(
        app.http,
        &format!(
            "/api/0/locations?user=alice&device=bike&from={BASE}&to={}",
            BASE + 10
        ),
    )
    .await;
    let want: Vec<Value> = fixes.iter().map(|f| expected("alice", "bike", f)).collect();
    assert_eq!(body["data"], Value::Array(want));

    app.stop().await;
    broker.shutdown().await;
}
