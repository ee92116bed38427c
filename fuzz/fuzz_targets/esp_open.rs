#![no_main]

// The ESP inbound path with fixed SA keys: arbitrary outer packets, patched ones that reach the ICV check, and
// scripted traffic through a real SA pair (replays, bit flips, sequence jumps) checked against a window model.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hostsec_fuzz::esp_open(data));
