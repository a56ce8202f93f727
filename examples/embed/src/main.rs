//! A broker embedded in another tokio program.
//!
//! The program starts a broker on its own runtime (any free port on 127.0.0.1), subscribes
//! in-process, and talks to it both ways: a TCP client (facteur-codec over a plain socket)
//! publishes a reading the in-process subscriber receives, and an in-process publish reaches
//! the TCP client. Run it with `cargo run -p facteur-example-embed`.

use facteur_broker::{Broker, Config};
use facteur_codec::{
    decode, Connect, Encode, Packet, ProtocolVersion, Publish, QoS, Status, Subscribe, Subscription,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

const V: ProtocolVersion = ProtocolVersion::V5;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (reading, command) = run().await?;
    println!("in-process subscriber got: {reading}");
    println!("TCP client got: {command}");
    Ok(())
}

/// Runs the example; returns what each side received.
async fn run() -> Result<(String, String), Error> {
    let mut config = Config::default();
    config.listeners[0].port = 0;
    let broker = Broker::start(config).await?;
    let mut readings = broker.subscribe("maison/+/temperature", QoS::AtLeastOnce)?;

    // A device connects over TCP and subscribes to its commands.
    let mut device = TcpStream::connect(broker.local_addrs()[0]).await?;
    send(&mut device, &Packet::Connect(Connect::new(V, "thermostat"))).await?;
    recv(&mut device).await?; // CONNACK
    let subs = [Subscription::new("maison/salon/consigne", QoS::AtMostOnce)];
    send(&mut device, &Packet::Subscribe(Subscribe::new(1, &subs))).await?;
    recv(&mut device).await?; // SUBACK

    // Device → program.
    let reading = Publish::new("maison/salon/temperature", b"21.5");
    send(&mut device, &Packet::Publish(reading)).await?;
    let got = tokio::time::timeout(Duration::from_secs(5), readings.recv())
        .await?
        .ok_or("broker stopped")?;
    let reading = format!("{} = {}", got.topic, String::from_utf8_lossy(&got.payload));

    // Program → device.
    broker.publish("maison/salon/consigne", b"19", QoS::AtMostOnce, false)?;
    let bytes = recv(&mut device).await?;
    let Ok(Status::Complete(decoded)) = decode(&bytes, V, u32::MAX) else {
        return Err("undecodable packet".into());
    };
    let Packet::Publish(command) = decoded.packet else {
        return Err("expected a PUBLISH".into());
    };
    let command = format!(
        "{} = {}",
        command.topic,
        String::from_utf8_lossy(command.payload)
    );

    broker.shutdown().await;
    Ok((reading, command))
}

async fn send(stream: &mut TcpStream, packet: &Packet<'_>) -> Result<(), Error> {
    let mut buf = vec![0u8; packet.encoded_len(V)?];
    packet.encode(V, &mut buf)?;
    stream.write_all(&buf).await?;
    Ok(())
}

/// Reads one whole packet (within 5 s).
async fn recv(stream: &mut TcpStream) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    loop {
        if let Status::Complete(decoded) = decode(&buf, V, u32::MAX)? {
            buf.truncate(decoded.len);
            return Ok(buf);
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await??;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn both_directions_work() {
        let (reading, command) = super::run().await.unwrap();
        assert_eq!(reading, "maison/salon/temperature = 21.5");
        assert_eq!(command, "maison/salon/consigne = 19");
    }
}
