//! The compact serialisation of a JWS (RFC 7515 §7.1): three base64url parts joined by
//! dots. The one place that splits a JWT or DPoP proof into its parts.

/// The parts of a compact JWS, still encoded and unverified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact<'a> {
    /// The encoded protected header.
    pub header: &'a str,
    /// The encoded payload (the claims of a JWT).
    pub payload: &'a str,
    /// The encoded signature.
    pub signature: &'a str,
    /// `header.payload`: the bytes the signature covers (RFC 7515 §5.2 step 8).
    pub signing_input: &'a str,
}

/// Splits `token` into its parts, or `None` unless it has exactly three (any of which may be
/// empty: decoding them is the caller's check).
pub fn split(token: &str) -> Option<Compact<'_>> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(Compact {
        header,
        payload,
        signature,
        signing_input: &token[..header.len() + 1 + payload.len()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_parts_split_and_keep_the_signing_input() {
        let c = split("aGVhZA.Ym9keQ.c2ln").unwrap();
        assert_eq!(
            c,
            Compact {
                header: "aGVhZA",
                payload: "Ym9keQ",
                signature: "c2ln",
                signing_input: "aGVhZA.Ym9keQ",
            }
        );
        assert_eq!(split("..").unwrap().signing_input, ".");
    }

    #[test]
    fn any_other_count_of_parts_is_refused() {
        for bad in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
