//! Entitlement numbers, `E-XXXX-XXXX-XXXX`: what a customer quotes to support.
//!
//! The domain only formats and checks them; the randomness (or, for subscriptions a process
//! manager creates, a hash) comes from outside, like every other id.

/// Crockford's base32 alphabet: no I, L, O or U, so a number read aloud or retyped from a
/// screenshot is not misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Formats the low 60 bits of `bits` as an entitlement number.
pub fn format_number(bits: u64) -> String {
    let mut number = String::with_capacity(16);
    number.push_str("E-");
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            number.push('-');
        }
        let shift = 55 - 5 * i;
        let index = ((bits >> shift) & 0x1f) as usize;
        number.push(char::from(ALPHABET[index]));
    }
    number
}

/// Whether `number` has the shape `E-XXXX-XXXX-XXXX` (upper-case letters and digits).
pub fn is_valid(number: &str) -> bool {
    let Some(rest) = number.strip_prefix("E-") else {
        return false;
    };
    let groups: Vec<&str> = rest.split('-').collect();
    groups.len() == 3
        && groups.iter().all(|group| {
            group.len() == 4
                && group
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_number_has_the_entitlement_shape() {
        for bits in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let number = format_number(bits);
            assert!(is_valid(&number), "{number}");
        }
        assert_eq!(format_number(0), "E-0000-0000-0000");
    }

    #[test]
    fn different_bits_give_different_numbers() {
        assert_ne!(format_number(1), format_number(2));
    }

    #[test]
    fn numbers_of_another_shape_are_not_valid() {
        for bad in [
            "",
            "E-0000-0000",
            "e-0000-0000-0000",
            "E-0000-0000-000a",
            "X-0000-0000-0000",
            "E-0000-0000-0000-0000",
            "E-00000-000-0000",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
