//! The time, as the firmware tells it: the driver reads no clock of its own.

/// A monotonic clock in milliseconds (since boot, or any origin: only differences count),
/// such as a SysTick counter, `embassy_time::Instant::now().as_millis()` or a RTC.
///
/// Any `FnMut() -> u64` closure is one:
///
/// ```
/// use facteur_embedded::Clock;
/// let mut ticks = 0u64;
/// let mut clock = move || {
///     ticks += 10;
///     ticks
/// };
/// assert_eq!(clock.now_ms(), 10);
/// assert_eq!(clock.now_ms(), 20);
/// ```
pub trait Clock {
    /// Milliseconds since the clock's origin; never goes backwards.
    fn now_ms(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Clock for F {
    fn now_ms(&mut self) -> u64 {
        self()
    }
}
