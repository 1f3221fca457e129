//! Postgres `numeric` in its binary wire form, to and from decimal text.
//!
//! `numeric` is arbitrary precision, so it travels as text on the JS side (like node-postgres),
//! and the text must be exactly what Postgres itself prints (`numeric_out`): the declared scale is
//! kept (`1.50` stays `1.50`), special values are `NaN`, `Infinity`, `-Infinity`. The wire form is
//! base-10000 digits with a weight (the power of 10000 of the first digit) and a display scale.

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Renders the binary form as `numeric_out` would; `None` if the bytes are malformed.
pub fn decode_to_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 {
        return None;
    }
    let read_u16 = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let ndigits = read_u16(0) as usize;
    let weight = read_u16(2) as i16 as i32;
    let sign = read_u16(4);
    let dscale = read_u16(6) as i32;
    if bytes.len() != 8 + ndigits * 2 {
        return None;
    }
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return None,
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            read_u16(8 + i as usize * 2)
        } else {
            0
        }
    };

    let mut out = String::with_capacity(ndigits * 4 + dscale as usize + 3);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let d = digit(i);
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut written = 0;
        let mut i = weight + 1;
        while written < dscale {
            let group = format!("{:04}", digit(i));
            for ch in group.chars() {
                if written == dscale {
                    break;
                }
                out.push(ch);
                written += 1;
            }
            i += 1;
        }
    }
    Some(out)
}

/// Encodes decimal text (`-12.5`, `1e-3`, `NaN`, `Infinity`) in the binary form.
pub fn encode_from_text(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let special = |sign: u16| header(0, 0, sign, 0);
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Ok(special(NUMERIC_NAN)),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(special(NUMERIC_PINF)),
        "-infinity" | "-inf" => return Ok(special(NUMERIC_NINF)),
        _ => {}
    }
    let bad = || format!("'{t}' is not a decimal number");
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => {
            let exp: i32 = rest[at + 1..].parse().map_err(|_| bad())?;
            (&rest[..at], exp)
        }
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || exponent.abs() > 100_000
    {
        return Err(bad());
    }
    // value = digits × 10^lowest_power
    let digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let lowest_power = exponent - frac_part.len() as i32;
    let dscale = (-lowest_power).max(0);
    if dscale > 16383 {
        return Err(format!("'{t}' has more decimal places than numeric allows"));
    }

    // Place each decimal digit into its base-10000 group.
    let highest_power = lowest_power + digits.len() as i32 - 1;
    let top_group = highest_power.div_euclid(4);
    let bottom_group = lowest_power.div_euclid(4);
    let mut groups = vec![0u16; (top_group - bottom_group + 1) as usize];
    for (i, &d) in digits.iter().enumerate() {
        let power = highest_power - i as i32;
        let group = (top_group - power.div_euclid(4)) as usize;
        groups[group] += d as u16 * 10u16.pow(power.rem_euclid(4) as u32);
    }
    // Strip zero groups at both ends; the weight follows the first non-zero group.
    let first = groups.iter().position(|&g| g != 0);
    let Some(first) = first else {
        return Ok(header(0, 0, NUMERIC_POS, dscale as u16));
    };
    let last = groups.iter().rposition(|&g| g != 0).unwrap_or(first);
    let weight = top_group - first as i32;
    let kept = &groups[first..=last];
    let mut out = header(
        kept.len() as u16,
        weight as i16,
        if negative { NUMERIC_NEG } else { NUMERIC_POS },
        dscale as u16,
    );
    for g in kept {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

fn header(ndigits: u16, weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + ndigits as usize * 2);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        decode_to_text(&encode_from_text(text).unwrap()).unwrap()
    }

    #[test]
    fn keeps_scale_like_numeric_out() {
        assert_eq!(round_trip("1.50"), "1.50");
        assert_eq!(round_trip("0"), "0");
        assert_eq!(round_trip("0.000"), "0.000");
        assert_eq!(round_trip("-12.5"), "-12.5");
        assert_eq!(round_trip("10000"), "10000");
        assert_eq!(round_trip("0.0001"), "0.0001");
        assert_eq!(round_trip("123456789.987654321"), "123456789.987654321");
    }

    #[test]
    fn exponents_expand() {
        assert_eq!(round_trip("1e3"), "1000");
        assert_eq!(round_trip("1.5e-3"), "0.0015");
        assert_eq!(round_trip("2E+2"), "200");
    }

    #[test]
    fn beyond_f64_precision_survives() {
        let big = "12345678901234567890123456789.0123456789012345678901";
        assert_eq!(round_trip(big), big);
    }

    #[test]
    fn specials() {
        assert_eq!(round_trip("NaN"), "NaN");
        assert_eq!(round_trip("Infinity"), "Infinity");
        assert_eq!(round_trip("-Infinity"), "-Infinity");
    }

    #[test]
    fn decodes_known_wire_bytes() {
        // 1234.5678 as Postgres sends it: ndigits 2, weight 0, pos, dscale 4, [1234, 5678]
        let bytes = [0, 2, 0, 0, 0, 0, 0, 4, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(decode_to_text(&bytes).unwrap(), "1234.5678");
        // 0.01 with dscale 2: ndigits 1, weight -1, [100]
        let bytes = [0, 1, 0xFF, 0xFF, 0, 0, 0, 2, 0, 100];
        assert_eq!(decode_to_text(&bytes).unwrap(), "0.01");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "--1", "1e", "1;drop", "."] {
            assert!(encode_from_text(bad).is_err(), "{bad}");
        }
        assert!(decode_to_text(&[0, 1]).is_none());
    }
}
