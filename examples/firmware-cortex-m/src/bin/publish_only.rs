//! The smallest useful client, for the flash and RAM figures of docs/performance.md:
//! connect (MQTT 3.1.1), publish the die temperature at QoS 1 every 10 s, wait for its
//! PUBACK, reconnect after any error. No subscription, no will.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facteur_embedded::blocking::Client;
use facteur_embedded::{ConnectOptions, HeaplessStore, ProtocolVersion, QoS};
use firmware_cortex_m::{board, text};

#[entry]
fn main() -> ! {
    board::init();
    let (mut rx, mut tx) = ([0u8; 128], [0u8; 128]);
    let options = ConnectOptions::new(ProtocolVersion::V3_1_1, "cortex-m4f-pub");
    let mut client: Client<_, _, HeaplessStore<1, 1, 48>> =
        Client::new(options, board::millis, &mut rx, &mut tx);
    loop {
        if client.connect(board::Link::open()).is_err() {
            board::wait_ms(5_000);
            continue;
        }
        loop {
            let mut buf = [0u8; 12];
            let reading = text::centi(board::die_temperature_centi(), &mut buf);
            if client
                .publish(
                    "maison/cortex-m4f-pub/temperature",
                    reading,
                    QoS::AtLeastOnce,
                    false,
                )
                .is_err()
            {
                break;
            }
            let until = board::millis() + 10_000;
            while board::millis() < until {
                if let Err(e) = client.poll() {
                    if e.is_fatal() {
                        break;
                    }
                }
            }
            if !client.is_connected() {
                break;
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
