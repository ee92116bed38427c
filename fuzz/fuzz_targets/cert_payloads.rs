#![no_main]

// CERT, CR and NAT-OA share the shape "type byte, then data": one input exercises all three.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hostsec_fuzz::cert(data);
    hostsec_fuzz::cert_request(data);
    hostsec_fuzz::nat_oa(data);
});
