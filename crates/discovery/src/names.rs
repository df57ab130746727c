//! Qualified tool and prompt names: `<serverId>__<name>` (an instance's) or `<service>__<name>`
//! (a service's: services are ids too), always valid for common clients.
//!
//! Many MCP hosts (and the LLM APIs behind them) accept only names matching
//! `^[a-zA-Z0-9_-]{1,64}$`. A registry id is a slug (`[a-z0-9-]`, at most 64 characters) and a
//! tool name is whatever the server chose, so `<serverId>__<tool>` can be too long or contain
//! other characters. Such a name is **shortened**: every character outside `[a-zA-Z0-9_-]`
//! becomes `_`, the result is cut to 53 characters, and `_` plus 10 hex digits of a hash of the
//! full `<serverId>__<tool>` are appended (64 characters at most). The hash is FNV-1a (64 bit,
//! top 40 bits kept), computed here and nowhere else, so the shortened name depends only on the
//! server id and the tool name: it is the same in every process, on every run.
//!
//! Ids never contain `_`, so the first `__` separates the server id from the tool name and two
//! different (server, tool) pairs never get the same unshortened name.

/// The longest qualified name, in bytes (the limit of `^[a-zA-Z0-9_-]{1,64}$`).
pub const MAX_QUALIFIED_LEN: usize = 64;

/// What separates the server id from the tool name in a qualified name.
pub const SEPARATOR: &str = "__";

/// Hex digits of the hash suffix of a shortened name.
const HASH_DIGITS: usize = 10;

/// The qualified name of `tool` on server `server_id`: `<serverId>__<tool>` when that is a
/// valid name, else its stable shortened form (see the module docs).
pub fn qualified_name(server_id: &str, tool: &str) -> String {
    let full = format!("{server_id}{SEPARATOR}{tool}");
    if is_valid_name(&full) {
        return full;
    }
    let hash = fnv1a64(full.as_bytes()) >> (64 - 4 * HASH_DIGITS);
    let suffix = format!("_{hash:0HASH_DIGITS$x}");
    let keep = MAX_QUALIFIED_LEN - suffix.len();
    let mut short: String = full
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .take(keep)
        .collect();
    short.push_str(&suffix);
    short
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,64}$`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_QUALIFIED_LEN && name.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// 64-bit FNV-1a: tiny, dependency-free and fixed forever, which is what a stable name needs
/// (it is not meant to resist deliberate collisions; the index detects those).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_valid_names_are_kept() {
        let cases = [
            ("catalog", "search_products", "catalog__search_products"),
            ("a", "b", "a__b"),
            ("svc-1", "get-item", "svc-1__get-item"),
            ("a", "B__c", "a__B__c"),
        ];
        for (server, tool, want) in cases {
            assert_eq!(qualified_name(server, tool), want, "{server} {tool}");
        }
    }

    #[test]
    fn exactly_64_characters_is_kept() {
        let tool = "t".repeat(64 - "abc__".len());
        let name = qualified_name("abc", &tool);
        assert_eq!(name, format!("abc__{tool}"));
        assert_eq!(name.len(), 64);
    }

    #[test]
    fn long_or_odd_names_are_shortened_stably() {
        let cases = [
            ("a".repeat(64), "search".to_owned()),
            ("abc".to_owned(), "t".repeat(60)),
            ("abc".to_owned(), "files.read".to_owned()),
            ("abc".to_owned(), "grüße/tool name".to_owned()),
        ];
        for (server, tool) in &cases {
            let name = qualified_name(server, tool);
            assert!(is_valid_name(&name), "{name:?} from {server} {tool}");
            assert_eq!(name, qualified_name(server, tool), "stable");
            let (_, suffix) = name.rsplit_once('_').expect("hash suffix");
            assert_eq!(suffix.len(), HASH_DIGITS, "{name}");
            assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        }
        // Fixed values: changing the scheme would rename tools for every host.
        assert_eq!(
            qualified_name("abc", "files.read"),
            format!("abc__files_read_{:010x}", fnv1a64(b"abc__files.read") >> 24)
        );
        assert_eq!(
            qualified_name("gamma", "files.read"),
            "gamma__files_read_37340803d5",
            "the README's example"
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn shortened_names_keep_distinct_tools_apart() {
        let long = "x".repeat(70);
        let a = qualified_name("srv", &format!("{long}a"));
        let b = qualified_name("srv", &format!("{long}b"));
        assert_ne!(a, b);
        assert_eq!(a[..53], b[..53], "same readable prefix, different hash");
        let dotted = qualified_name("srv", "a.b");
        let underscored = qualified_name("srv", "a_b");
        assert_ne!(dotted, underscored);
    }

    #[test]
    fn validity() {
        for ok in ["a", "A-b_c", &"x".repeat(64)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "a.b", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
