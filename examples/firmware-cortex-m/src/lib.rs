//! Board support for the Cortex-M4F firmwares of facteur-embedded, on an STM32F411: a
//! millisecond clock (SysTick), the link to the broker (USART2), the die temperature
//! (ADC1) and the user LED (PA5). The MQTT client sees only `embedded_io::{Read, Write}`
//! and a clock: another board, another network (smoltcp, a TLS stream) changes this file,
//! not the firmwares in `src/bin`.
#![no_std]

pub mod board;
pub mod text;
