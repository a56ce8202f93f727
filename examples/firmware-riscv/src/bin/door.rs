//! Connects to the broker (MQTT 3.1.1, a persistent session) over the board's link,
//! subscribes to a command topic, publishes the door contact at QoS 1 (retained) when it
//! changes and every minute, and switches the relay on the commands "on" and "off".
//! Reconnects after any error; readings still in flight are sent again.
#![no_std]
#![no_main]

use facteur_embedded::blocking::Client;
use facteur_embedded::{
    ConnectOptions, HeaplessStore, Notification, ProtocolVersion, QoS, Subscription,
};
use firmware_riscv::board;

const DOOR: &str = "maison/esp32c3-1/door";
const COMMAND: &str = "maison/esp32c3-1/relay";

#[riscv_rt::entry]
fn main() -> ! {
    board::init();
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(ProtocolVersion::V3_1_1, "esp32c3-1");
    options.keep_alive = 30;
    options.clean_start = false; // 3.1.1: the broker keeps the session between connections
    let mut client: Client<_, _, HeaplessStore<4, 4, 64>> =
        Client::new(options, board::millis, &mut rx, &mut tx);
    let mut last: Option<(bool, u64)> = None;
    loop {
        let connected = match client.connect(board::Link::open()) {
            Ok(connected) => connected,
            Err(_) => {
                board::wait_ms(5_000);
                continue;
            }
        };
        if !connected.session_present
            && client
                .subscribe(&[Subscription::new(COMMAND, QoS::AtLeastOnce)])
                .is_err()
        {
            continue;
        }
        loop {
            let closed = board::door_closed();
            let now = board::millis();
            if last.map_or(true, |(was, at)| was != closed || now >= at + 60_000) {
                let reading: &[u8] = if closed { b"closed" } else { b"open" };
                if client
                    .publish(DOOR, reading, QoS::AtLeastOnce, true)
                    .is_ok()
                {
                    last = Some((closed, now));
                }
            }
            match client.poll() {
                Ok(Some(Notification::Message(m))) if m.topic == COMMAND => match m.payload {
                    b"on" => board::relay(true),
                    b"off" => board::relay(false),
                    _ => {}
                },
                Ok(_) => {}
                Err(e) if e.is_fatal() => break, // reconnect
                Err(_) => {}
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
