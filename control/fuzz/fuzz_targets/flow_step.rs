#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|script: rtpmesh_fuzz::flow_step::Script| rtpmesh_fuzz::flow_step::check(script));
