//! MQTT over TLS with the broker's certificate pinned by its fingerprint: a TCP socket,
//! embedded-tls on top of it, facteur-embedded on top of that. On a device the socket is the
//! network stack's and the random numbers the chip's; the three layers are the same.
//!
//! ```sh
//! cargo run -p facteur-embedded --example tls_pinned -- 127.0.0.1:8883 \
//!     "$(openssl x509 -noout -fingerprint -sha256 -in broker.pem | cut -d= -f2 | tr -d :)"
//! ```

mod pinned;

use embedded_io_adapters::std::FromStd;
use embedded_tls::blocking::{TlsConfig, TlsConnection, TlsContext};
use facteur_embedded::blocking::Client;
use facteur_embedded::{ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(hex)) = (args.next(), args.next()) else {
        return Err("usage: tls_pinned HOST:PORT SHA256-FINGERPRINT-HEX".into());
    };
    let fingerprint = parse_fingerprint(&hex).ok_or("the fingerprint is 64 hex digits")?;

    // 1. The socket.
    let socket = FromStd::new(std::net::TcpStream::connect(&addr)?);
    // 2. TLS on it: record buffers (16 KiB + overhead for a server that sends full records),
    //    the handshake checked against the pin.
    let (mut record_rx, mut record_tx) = (vec![0u8; 16_640], vec![0u8; 4_096]);
    let mut tls = TlsConnection::new(socket, &mut record_rx, &mut record_tx);
    let provider = pinned::PinnedProvider::new(rand_core::OsRng, fingerprint);
    tls.open(TlsContext::new(&TlsConfig::new(), provider))
        .map_err(|e| format!("TLS: {e:?}"))?;
    // 3. MQTT on the TLS stream, as on any other.
    let (mut rx, mut tx) = ([0u8; 512], [0u8; 512]);
    let start = std::time::Instant::now();
    let millis = move || start.elapsed().as_millis() as u64;
    let options = ConnectOptions::new(ProtocolVersion::V5, "tls-pinned");
    let mut client: Client<_, _, HeaplessStore<2, 2, 128>> =
        Client::new(options, millis, &mut rx, &mut tx);
    client.connect(tls).map_err(|e| format!("MQTT: {e}"))?;
    client
        .publish("maison/tls/hello", b"pinned", QoS::AtLeastOnce, false)
        .map_err(|e| format!("MQTT: {e}"))?;
    loop {
        match client.poll().map_err(|e| format!("MQTT: {e}"))? {
            Some(Notification::Published { reason, .. }) => {
                println!("published over TLS, the broker says {reason}");
                return Ok(());
            }
            _ => continue,
        }
    }
}

/// "AB:CD:..." or "abcd..." as 32 bytes.
fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
