#![no_main]
//! Decodes arbitrary bytes as a stream of MQTT 5 packets.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    facteur_fuzz::decode_stream(data, facteur_codec::ProtocolVersion::V5);
});
