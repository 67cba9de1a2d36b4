//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA), table driven.
//!
//! The companding laws follow ITU-T G.711 (11/88) Tables 1a/1b (µ-law) and 2a/2b (A-law),
//! with the "even bit" inversion of A-law (XOR 0x55) and the all-bits inversion of µ-law
//! applied, so encoded bytes are what goes on the wire (RFC 3551 §4.5.14).
//!
//! Encoding looks the code word up in a table indexed by the significant bits of the 16-bit
//! sample (14 bits for µ-law, 12 bits for A-law); decoding is a 256-entry table. All tables
//! are built at compile time.

/// Number of bits of a 16-bit sample that µ-law resolves (G.711 µ-law is a 14-bit law).
const ULAW_BITS: u32 = 14;
/// Number of bits of a 16-bit sample that A-law resolves (a 12-bit magnitude plus sign).
const ALAW_BITS: u32 = 12;

/// µ-law code word of a 16-bit sample (G.711 §3, bias 33 on a 14-bit magnitude).
const fn ulaw_compress(x: i16) -> u8 {
    // One's complement magnitude on 14 bits: negative inputs map onto the same segment grid.
    let mut mag = if x < 0 { (!x) >> 2 } else { x >> 2 } as i32;
    mag += 33;
    if mag > 0x1FFF {
        mag = 0x1FFF;
    }
    let mut seg: i32 = 1;
    let mut i = mag >> 6;
    while i != 0 {
        seg += 1;
        i >>= 1;
    }
    let high = 8 - seg;
    let low = 0xF - ((mag >> seg) & 0xF);
    let code = ((high << 4) | low) as u8;
    if x >= 0 { code | 0x80 } else { code }
}

/// Linear value (16-bit scale) of a µ-law code word (G.711 decision/reconstruction values).
const fn ulaw_expand(code: u8) -> i16 {
    let inv = !code;
    let exponent = ((inv >> 4) & 0x7) as i32;
    let mantissa = (inv & 0xF) as i32;
    let step = 4 << (exponent + 1);
    let mag = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    if code & 0x80 == 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// A-law code word of a 16-bit sample (G.711 §2, 13-segment law, even bits inverted).
const fn alaw_compress(x: i16) -> u8 {
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 } as i32;
    if ix > 15 {
        let mut exp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exp += 1;
        }
        ix -= 16;
        ix += exp << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix as u8) ^ 0x55
}

/// Linear value (16-bit scale) of an A-law code word.
const fn alaw_expand(code: u8) -> i16 {
    let ix = (code ^ 0x55) & 0x7F;
    let exp = (ix >> 4) as i32;
    let mut mant = (ix & 0xF) as i32;
    if exp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 8;
    if exp > 1 {
        mant <<= exp - 1;
    }
    if code & 0x80 != 0 {
        mant as i16
    } else {
        -mant as i16
    }
}

const fn build_ulaw_encode() -> [u8; 1 << ULAW_BITS] {
    let mut t = [0u8; 1 << ULAW_BITS];
    let mut i = 0;
    while i < t.len() {
        // Index is the top 14 bits of the sample, stored unsigned (two's complement wrap).
        let sample = ((i as u16) << (16 - ULAW_BITS)) as i16;
        t[i] = ulaw_compress(sample);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 1 << ALAW_BITS] {
    let mut t = [0u8; 1 << ALAW_BITS];
    let mut i = 0;
    while i < t.len() {
        let sample = ((i as u16) << (16 - ALAW_BITS)) as i16;
        t[i] = alaw_compress(sample);
        i += 1;
    }
    t
}

const fn build_decode(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_expand(i as u8)
        } else {
            alaw_expand(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_ENCODE: [u8; 1 << ULAW_BITS] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 1 << ALAW_BITS] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_decode(true);
static ALAW_DECODE: [i16; 256] = build_decode(false);

/// µ-law code word for one 16-bit linear sample.
#[inline]
pub fn ulaw_encode_sample(x: i16) -> u8 {
    ULAW_ENCODE[(x as u16 >> (16 - ULAW_BITS)) as usize]
}

/// 16-bit linear sample for one µ-law code word.
#[inline]
pub fn ulaw_decode_sample(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// A-law code word for one 16-bit linear sample.
#[inline]
pub fn alaw_encode_sample(x: i16) -> u8 {
    ALAW_ENCODE[(x as u16 >> (16 - ALAW_BITS)) as usize]
}

/// 16-bit linear sample for one A-law code word.
#[inline]
pub fn alaw_decode_sample(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Appends the µ-law encoding of `pcm` to `out` (one byte per sample).
pub fn ulaw_encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&x| ulaw_encode_sample(x)));
}

/// Appends the linear decoding of µ-law `payload` to `out` (one sample per byte).
pub fn ulaw_decode(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| ulaw_decode_sample(c)));
}

/// Appends the A-law encoding of `pcm` to `out` (one byte per sample).
pub fn alaw_encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&x| alaw_encode_sample(x)));
}

/// Appends the linear decoding of A-law `payload` to `out` (one sample per byte).
pub fn alaw_decode(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| alaw_decode_sample(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_direct_formulas() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode_sample(x), ulaw_compress(x), "ulaw {x}");
            assert_eq!(alaw_encode_sample(x), alaw_compress(x), "alaw {x}");
        }
    }

    #[test]
    fn known_code_words() {
        // Silence: µ-law 0xFF (positive zero), A-law 0xD5.
        assert_eq!(ulaw_encode_sample(0), 0xFF);
        assert_eq!(alaw_encode_sample(0), 0xD5);
        // Extremes of G.711 reconstruction: ±32124 (µ-law), ±32256 (A-law).
        assert_eq!(ulaw_decode_sample(0x80), 32124);
        assert_eq!(ulaw_decode_sample(0x00), -32124);
        assert_eq!(alaw_decode_sample(0xAA), 32256);
        assert_eq!(alaw_decode_sample(0x2A), -32256);
        assert_eq!(ulaw_encode_sample(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_sample(i16::MIN), 0x00);
        assert_eq!(alaw_encode_sample(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_sample(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_then_encode_is_identity_on_code_words() {
        for c in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF): -0 decodes to 0 which encodes to +0.
            let u = ulaw_encode_sample(ulaw_decode_sample(c));
            if c == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, c, "ulaw {c:#x}");
            }
            assert_eq!(alaw_encode_sample(alaw_decode_sample(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn monotonic_reconstruction() {
        let mut prev = i16::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let y = ulaw_decode_sample(ulaw_encode_sample(x));
            assert!(y >= prev);
            prev = y;
        }
        let mut prev = i16::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let y = alaw_decode_sample(alaw_encode_sample(x));
            assert!(y >= prev);
            prev = y;
        }
    }
}
