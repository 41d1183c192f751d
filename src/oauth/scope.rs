//! Scopes (RFC 6749 §3.3): space-separated tokens, compared as sets.

/// Splits a scope string into its distinct tokens, keeping their first order.
pub fn parse(scope: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Whether every requested scope is among the allowed ones.
pub fn is_subset(requested: &[&str], allowed: &[&str]) -> bool {
    requested.iter().all(|r| allowed.contains(r))
}

/// Joins scopes with single spaces.
pub fn join(scopes: &[&str]) -> String {
    scopes.join(" ")
}

/// Whether a scope string is syntactically valid (printable ASCII, no `"` or `\`).
pub fn is_valid(scope: &str) -> bool {
    scope.len() <= 2000
        && scope.bytes().all(|b| {
            b == b' ' || (b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_and_compared_as_sets() {
        assert_eq!(parse("a  b a c"), ["a", "b", "c"]);
        assert!(is_subset(&["b", "a"], &["a", "b", "c"]));
        assert!(!is_subset(&["a", "d"], &["a", "b"]));
        assert!(is_subset(&[], &["a"]));
    }

    #[test]
    fn quotes_and_backslashes_are_invalid() {
        assert!(is_valid("read write:files"));
        assert!(!is_valid("a\"b"));
        assert!(!is_valid("a\\b"));
        assert!(!is_valid("a\tb"));
    }
}
