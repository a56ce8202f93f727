//! STM32F411 registers (RM0383), at the HSI's 16 MHz after reset. Only this file touches
//! hardware (volatile register access).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

const CPU_HZ: u32 = 16_000_000;

const RCC: usize = 0x4002_3800;
const RCC_AHB1ENR: usize = RCC + 0x30;
const RCC_APB1ENR: usize = RCC + 0x40;
const RCC_APB2ENR: usize = RCC + 0x44;
const GPIOA: usize = 0x4002_0000;
const GPIOA_MODER: usize = GPIOA;
const GPIOA_ODR: usize = GPIOA + 0x14;
const GPIOA_AFRL: usize = GPIOA + 0x20;
const USART2: usize = 0x4000_4400;
const USART_SR: usize = USART2;
const USART_DR: usize = USART2 + 0x04;
const USART_BRR: usize = USART2 + 0x08;
const USART_CR1: usize = USART2 + 0x0C;
const ADC1: usize = 0x4001_2000;
const ADC_SR: usize = ADC1;
const ADC_CR2: usize = ADC1 + 0x08;
const ADC_SMPR1: usize = ADC1 + 0x0C;
const ADC_SQR3: usize = ADC1 + 0x34;
const ADC_DR: usize = ADC1 + 0x4C;
const ADC_CCR: usize = 0x4001_2300 + 0x04;

fn read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the register addresses above, valid on this chip.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write(addr: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn modify(addr: usize, f: impl FnOnce(u32) -> u32) {
    write(addr, f(read(addr)));
}

static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since boot (wraps after 49 days: a firmware that runs longer widens it).
pub fn millis() -> u64 {
    u64::from(MILLIS.load(Ordering::Relaxed))
}

/// Busy-waits `ms` milliseconds.
pub fn wait_ms(ms: u64) {
    let until = millis() + ms;
    while millis() < until {
        cortex_m::asm::wfi();
    }
}

/// Starts the clock, the link, the ADC and the LED. Call once.
pub fn init() {
    let mut core = cortex_m::Peripherals::take().expect("init is called once");
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(CPU_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_counter();
    core.SYST.enable_interrupt();

    modify(RCC_AHB1ENR, |v| v | 1); // GPIOA
    modify(RCC_APB1ENR, |v| v | 1 << 17); // USART2
    modify(RCC_APB2ENR, |v| v | 1 << 8); // ADC1
                                         // PA2 / PA3: USART2 TX / RX (alternate function 7); PA5: the LED, an output.
    modify(GPIOA_MODER, |v| {
        (v & !(0b1111 << 4 | 0b11 << 10)) | 0b1010 << 4 | 0b01 << 10
    });
    modify(GPIOA_AFRL, |v| (v & !(0xFF << 8)) | 0x77 << 8);
    write(USART_BRR, CPU_HZ / 115_200);
    write(USART_CR1, 1 << 13 | 1 << 3 | 1 << 2); // enabled, TX, RX
                                                 // The temperature sensor: channel 18, 480-cycle sampling.
    modify(ADC_CCR, |v| v | 1 << 23);
    modify(ADC_SMPR1, |v| v | 0b111 << 24);
    write(ADC_SQR3, 18);
    write(ADC_CR2, 1);
}

/// The die temperature in hundredths of a degree Celsius (datasheet typicals: 0.76 V at
/// 25 °C, 2.5 mV/°C, a 3.3 V reference).
pub fn die_temperature_centi() -> i32 {
    modify(ADC_CR2, |v| v | 1 << 30); // start
    while read(ADC_SR) & 1 << 1 == 0 {}
    let raw = (read(ADC_DR) & 0xFFF) as i32;
    let millivolts = raw * 3300 / 4095;
    2500 + (millivolts - 760) * 100 * 10 / 25
}

/// Turns the LED on PA5 on or off.
pub fn led(on: bool) {
    modify(GPIOA_ODR, |v| if on { v | 1 << 5 } else { v & !(1 << 5) });
}

/// The link to the broker: USART2 at 115200 baud, wired to a serial-to-TCP bridge (an AT
/// modem in transparent mode, or `socat /dev/ttyUSB0,b115200,raw TCP:broker:1883` on a
/// bench). A read waits at most 100 ms for its first byte, then fails with
/// [`ErrorKind::TimedOut`](embedded_io::ErrorKind::TimedOut), so that the client's `poll`
/// returns and looks after the keep alive.
#[derive(Debug)]
pub struct Link(());

impl Link {
    /// The link (the UART was set up by [`init`]).
    pub fn open() -> Self {
        // Whatever the bridge sent before (a previous connection's bytes) is dropped.
        while read(USART_SR) & 1 << 5 != 0 {
            let _ = read(USART_DR);
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
            let status = read(USART_SR);
            if status & 1 << 3 != 0 {
                let _ = read(USART_DR); // clears the overrun
                return Err(embedded_io::ErrorKind::Other);
            }
            if status & 1 << 5 != 0 {
                buf[n] = read(USART_DR) as u8;
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
            while read(USART_SR) & 1 << 7 == 0 {}
            write(USART_DR, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        while read(USART_SR) & 1 << 6 == 0 {} // transmission complete
        Ok(())
    }
}
