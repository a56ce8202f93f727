//! Numbers as text without an allocator.

/// Writes `centi / 100` with two decimals ("-3.07", "21.50") into `out`; returns the text.
pub fn centi(value: i32, out: &mut [u8; 12]) -> &[u8] {
    let mut digits = [0u8; 12];
    let mut n = value.unsigned_abs();
    let mut len = 0;
    while len < 3 || n > 0 {
        if len == 2 {
            digits[len] = b'.';
            len += 1;
            continue;
        }
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    if value < 0 {
        digits[len] = b'-';
        len += 1;
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        out[i] = *d;
    }
    &out[..len]
}
