//! Subscribes to `maison/#` (or the filters given after the URL) and prints every message
//! it receives, with its topic, QoS and retain flag, and the connection's events.
//!
//! `cargo run -p facteur-example-client --bin printer -- mqtt://localhost:1883 'maison/#'`

use facteur_client::{Client, Options, QoS, SubscriptionOptions};

#[tokio::main]
async fn main() -> Result<(), facteur_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let mut filters: Vec<String> = args.collect();
    if filters.is_empty() {
        filters.push("maison/#".into());
    }
    let (client, mut messages) = Client::connect(Options::from_url(&url)?).await?;
    let mut events = client.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            eprintln!("{event:?}");
        }
    });
    let granted = client
        .subscribe_many(
            filters
                .iter()
                .map(|f| (f.clone(), SubscriptionOptions::qos(QoS::ExactlyOnce)))
                .collect(),
        )
        .await?;
    for (filter, result) in filters.iter().zip(granted) {
        println!("{filter}: {result:?}");
    }
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else { break };
                println!(
                    "{} [QoS {}{}] {}",
                    message.topic,
                    message.qos as u8,
                    if message.retain { ", retained" } else { "" },
                    String::from_utf8_lossy(&message.payload),
                );
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.disconnect().await
}
