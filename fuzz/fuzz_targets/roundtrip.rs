#![no_main]
//! Decode → encode → decode; the first byte picks the protocol version.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        facteur_fuzz::roundtrip(rest, facteur_fuzz::version_from(first));
    }
});
