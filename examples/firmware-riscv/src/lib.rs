//! Board support for the ESP32-C3-class firmware of facteur-embedded: a millisecond clock
//! (SYSTIMER), the link to the broker (UART0), a door contact (GPIO 2) and a relay (GPIO 3).
//! The MQTT client sees only `embedded_io::{Read, Write}` and a clock: another board or
//! network stack (esp-wifi and smoltcp, a TLS stream) changes this file, not `src/bin`.
#![no_std]

pub mod board;
