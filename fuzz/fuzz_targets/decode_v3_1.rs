#![no_main]
//! Decodes arbitrary bytes as a stream of MQTT 3.1 packets.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    facteur_fuzz::decode_stream(data, facteur_codec::ProtocolVersion::V3_1);
});
