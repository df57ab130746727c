//! Fuzzes registration parsing: any bytes that are JSON go through `Registration::from_json`
//! (with and without a path id); whatever is accepted must survive the entry rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_fleet_model::{Entry, Registration, ServerId};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let path: ServerId = "path-id".parse().expect("valid id");
    for path in [None, Some(&path)] {
        match Registration::from_json(&body, path) {
            Ok(reg) => {
                let now = "2024-05-06T07:08:09.123Z".parse().expect("timestamp");
                let text = serde_json::to_string(&Entry::new(reg.clone(), now)).expect("render");
                let echoed: Value = serde_json::from_str(&text).expect("rendered JSON");
                assert_eq!(Registration::from_json(&echoed, path).as_ref(), Ok(&reg));
                let back: Entry = serde_json::from_str(&text).expect("entry reads back");
                assert_eq!(back.id, reg.id);
            }
            Err(e) => assert!(!e.0.is_empty(), "empty errors"),
        }
    }
});
