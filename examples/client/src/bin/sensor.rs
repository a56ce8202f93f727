//! A temperature sensor: every 2 seconds it publishes a reading to
//! `maison/salon/temperature`, QoS 1 and retained (a new subscriber gets the last value
//! at once), with a will that says it went offline. It rides out broker restarts: the
//! client reconnects and resends what was not acknowledged.
//!
//! `cargo run -p facteur-example-client --bin sensor -- mqtt://localhost:1883`

use std::time::Duration;

use facteur_client::{Client, Options, QoS, Will};

#[tokio::main]
async fn main() -> Result<(), facteur_client::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let options = Options::from_url(&url)?.client_id("capteur-salon").will(
        Will::new("maison/salon/etat", "hors ligne")
            .qos(QoS::AtLeastOnce)
            .retain(true),
    );
    let (client, _messages) = Client::connect(options).await?;
    client
        .publish("maison/salon/etat", "en ligne")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut reading = 20.0_f64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        reading += 0.1;
        let payload = format!("{reading:.1}");
        // Completes when the broker acknowledged it (PUBACK), across reconnections.
        match client
            .publish("maison/salon/temperature", payload.clone())
            .qos(QoS::AtLeastOnce)
            .retain(true)
            .await
        {
            Ok(_) => println!("published {payload}"),
            Err(error) => eprintln!("not published: {error}"),
        }
    }
    client
        .publish("maison/salon/etat", "hors ligne")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await?;
    client.disconnect().await
}
