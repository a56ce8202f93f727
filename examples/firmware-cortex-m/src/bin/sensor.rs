//! Connects to the broker over the board's link, subscribes to a command topic, publishes
//! the die temperature at QoS 1 every 10 s and switches the LED on the commands "on" and
//! "off". Reconnects after any error; the session (MQTT 5 Session Expiry 5 min) resumes,
//! and readings still in flight are sent again.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facteur_embedded::blocking::Client;
use facteur_embedded::{
    ConnectOptions, HeaplessStore, Notification, Properties, ProtocolVersion, QoS, Subscription,
    Will,
};
use firmware_cortex_m::{board, text};

const TEMPERATURE: &str = "maison/cortex-m4f-1/temperature";
const COMMAND: &str = "maison/cortex-m4f-1/led";
const STATUS: &str = "maison/cortex-m4f-1/status";

#[entry]
fn main() -> ! {
    board::init();
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(ProtocolVersion::V5, "cortex-m4f-1");
    options.keep_alive = 30;
    options.session_expiry = 300;
    options.will = Some(Will {
        topic: STATUS,
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::EMPTY,
    });
    // 4 readings in flight, 4 waiting while disconnected, 64 bytes of topic + payload.
    let mut client: Client<_, _, HeaplessStore<4, 4, 64>> =
        Client::new(options, board::millis, &mut rx, &mut tx);
    let mut next_reading = 0;
    loop {
        let connected = match client.connect(board::Link::open()) {
            Ok(connected) => connected,
            Err(_) => {
                board::wait_ms(5_000);
                continue;
            }
        };
        if !connected.session_present {
            let command = [Subscription::new(COMMAND, QoS::AtLeastOnce)];
            if client.subscribe(&command).is_err() {
                continue;
            }
        }
        let _ = client.publish(STATUS, b"online", QoS::AtLeastOnce, true);
        loop {
            if board::millis() >= next_reading {
                next_reading = board::millis() + 10_000;
                let mut buf = [0u8; 12];
                let reading = text::centi(board::die_temperature_centi(), &mut buf);
                // Refused only when the queue is full (the broker is slow): skip a reading.
                let _ = client.publish(TEMPERATURE, reading, QoS::AtLeastOnce, false);
            }
            match client.poll() {
                Ok(Some(Notification::Message(m))) if m.topic == COMMAND => match m.payload {
                    b"on" => board::led(true),
                    b"off" => board::led(false),
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
    cortex_m::peripheral::SCB::sys_reset()
}
