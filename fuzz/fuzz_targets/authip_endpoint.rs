#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostsec_fuzz::authip_endpoint(data));
