//! ESP32-C3 registers (Technical Reference Manual), with UART0 as the ROM bootloader left it
//! (115200 baud). Only this file touches hardware (volatile register access).

const UART0_FIFO: usize = 0x6000_0000;
const UART0_STATUS: usize = 0x6000_001C;
const SYSTIMER_UNIT0_OP: usize = 0x6002_3004;
const SYSTIMER_UNIT0_VALUE_HI: usize = 0x6002_3040;
const SYSTIMER_UNIT0_VALUE_LO: usize = 0x6002_3044;
const GPIO_OUT_W1TS: usize = 0x6000_4008;
const GPIO_OUT_W1TC: usize = 0x6000_400C;
const GPIO_ENABLE_W1TS: usize = 0x6000_4024;
const GPIO_IN: usize = 0x6000_403C;
const GPIO_FUNC3_OUT_SEL_CFG: usize = 0x6000_4554 + 4 * 3;

/// SYSTIMER counts at 16 MHz.
const TICKS_PER_MS: u64 = 16_000;
const RELAY: u32 = 1 << 3;
const DOOR: u32 = 1 << 2;

fn read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the register addresses above, valid on this chip.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write(addr: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Milliseconds since boot, from SYSTIMER unit 0 (a 52-bit counter: no wrap in practice).
pub fn millis() -> u64 {
    write(SYSTIMER_UNIT0_OP, 1 << 30); // latch the value
    while read(SYSTIMER_UNIT0_OP) & 1 << 29 == 0 {}
    let ticks =
        u64::from(read(SYSTIMER_UNIT0_VALUE_HI)) << 32 | u64::from(read(SYSTIMER_UNIT0_VALUE_LO));
    ticks / TICKS_PER_MS
}

/// Busy-waits `ms` milliseconds.
pub fn wait_ms(ms: u64) {
    let until = millis() + ms;
    while millis() < until {}
}

/// Sets the relay's pin up as a plain output. Call once.
pub fn init() {
    write(GPIO_FUNC3_OUT_SEL_CFG, 0x80); // driven by GPIO_OUT, not a peripheral
    write(GPIO_ENABLE_W1TS, RELAY);
}

/// The door contact on GPIO 2: true when closed (pulled to ground by the contact).
pub fn door_closed() -> bool {
    read(GPIO_IN) & DOOR == 0
}

/// Switches the relay on GPIO 3.
pub fn relay(on: bool) {
    write(if on { GPIO_OUT_W1TS } else { GPIO_OUT_W1TC }, RELAY);
}

/// The link to the broker: UART0, wired to a serial-to-TCP bridge (an AT modem in
/// transparent mode, or `socat` on a bench). A read waits at most 100 ms for its first
/// byte, then fails with [`ErrorKind::TimedOut`](embedded_io::ErrorKind::TimedOut), so
/// that the client's `poll` returns and looks after the keep alive.
#[derive(Debug)]
pub struct Link(());

impl Link {
    /// The link; whatever waits in the receive FIFO (a previous connection's bytes) is dropped.
    pub fn open() -> Self {
        while read(UART0_STATUS) & 0x3FF != 0 {
            let _ = read(UART0_FIFO);
        }
        Link(())
    }
}

impl embedded_io::ErrorType for Link {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let until = millis() + 100;
        let mut n = 0;
        while n < buf.len() {
            if read(UART0_STATUS) & 0x3FF != 0 {
                buf[n] = read(UART0_FIFO) as u8;
                n += 1;
            } else if n > 0 {
                break;
            } else if millis() >= until {
                return Err(embedded_io::ErrorKind::TimedOut);
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Link {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            while (read(UART0_STATUS) >> 16) & 0x3FF >= 127 {} // transmit FIFO full
            write(UART0_FIFO, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        while (read(UART0_STATUS) >> 16) & 0x3FF != 0 {}
        Ok(())
    }
}
