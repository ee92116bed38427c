#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostsec_fuzz::x509::peer_id(data));
