//! ITU-T G.722 7 kHz audio coding at 64 kbit/s (sub-band ADPCM), encoder and decoder.
//!
//! Written here from the algorithm description in ITU-T G.722 (09/2012) because no
//! maintained Rust implementation exists. The structure follows the Recommendation's block
//! diagrams: a 24-tap quadrature mirror filter pair splits 16 kHz audio into two 8 kHz
//! sub-bands (§3.1, §4.4); the lower band is coded with 6-bit ADPCM (§3.3–3.6) and the higher
//! band with 2-bit ADPCM (§3.4–3.6), each with a pole-zero adaptive predictor (§3.6, blocks
//! RECONS, PARREC, UPPOL1/2, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC). The arithmetic is the
//! fixed-point arithmetic of the Recommendation, so output is bit-exact with other
//! conforming implementations (the tests compare against spandsp).
//!
//! Linear PCM is 16-bit at 16 kHz. Note the RTP clock rate of G.722 is 8000 Hz even though
//! the audio is sampled at 16 kHz (RFC 3551 §4.5.2).

/// QMF coefficients (G.722 Table 11), the first half of the symmetric 24-tap filter.
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Lower band quantizer decision levels, 6-bit (G.722 Table 6, scaled by 2^12 relative to
/// the scale factor).
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// Lower band output code for a negative difference, by quantizer interval (Table 6).
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
/// Lower band output code for a positive difference, by quantizer interval (Table 6).
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// Lower band 4-bit inverse quantizer outputs (Table 7, QM4).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower band 6-bit inverse quantizer outputs (Table 7, QM6), indexed by the 6-bit code.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Lower band log scale factor multipliers, by 3-bit magnitude (Table 8, WL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Map from the 4-bit lower band code to the 3-bit magnitude used by LOGSCL (Table 8).
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log table of SCALEL/SCALEH (Table 9, ILB).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Higher band 2-bit inverse quantizer outputs (Table 10, QM2).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Higher band code for negative / positive differences by interval (Table 10).
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
/// Higher band log scale factor multipliers (Table 10, WH) and the code → index map.
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];

/// Saturates to the 16-bit range, as the Recommendation's two's complement arithmetic does.
#[inline(always)]
fn sat(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// Sign as used by the adaptation blocks: -1 for negative, 0 otherwise.
#[inline(always)]
fn sgn(x: i32) -> i32 {
    x >> 15
}

/// Adaptive predictor and scale factor state of one sub-band (G.722 §3.5–3.6).
#[derive(Debug, Clone, Default)]
struct Band {
    /// Predicted signal, output of PREDIC.
    s: i32,
    /// Zero-section prediction, output of FILTEZ.
    sz: i32,
    /// Reconstructed signal, delayed (index 1 and 2 used).
    r: [i32; 3],
    /// Pole predictor coefficients (index 1 and 2 used).
    a: [i32; 3],
    /// Partially reconstructed signal, current and delayed.
    p: [i32; 3],
    /// Quantized difference signal delayed by 1..=6 samples (index 0 unused).
    d: [i32; 7],
    /// Zero predictor coefficients (1..=6 used).
    b: [i32; 7],
    /// Logarithmic quantizer scale factor.
    nb: i32,
    /// Quantizer scale factor.
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            det,
            ..Band::default()
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: adapts the scale factor from the multiplier `w`
    /// (§3.5). `limit` is 18432 for the lower and 22528 for the higher band; `shift_base` is
    /// 8 and 10 respectively.
    #[inline(always)]
    fn adapt_scale(&mut self, w: i32, limit: i32, shift_base: i32) {
        let nb = ((self.nb * 127) >> 7) + w;
        self.nb = nb.clamp(0, limit);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let shift = shift_base - (self.nb >> 11);
        let wd3 = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.det = wd3 << 2;
    }

    /// Predictor update for the quantized difference `d` (BLOCK 4, §3.6).
    #[inline(always)]
    fn update(&mut self, d: i32) {
        // RECONS and PARREC.
        let r = sat(self.s + d);
        let p = sat(self.sz + d);

        // UPPOL2: second pole coefficient.
        let sg0 = sgn(p);
        let sg1 = sgn(self.p[1]);
        let sg2 = sgn(self.p[2]);
        let wd1 = sat(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        let ap2 = wd3.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, limited by the second.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let lim = sat(15360 - ap2);
        let ap1 = sat(wd1 + wd2).clamp(-lim, lim);

        // UPZERO: sign-sign update of the six zero coefficients.
        let step = if d == 0 { 0 } else { 128 };
        let sgd = sgn(d);
        for i in 1..7 {
            let wd2 = if sgn(self.d[i]) == sgd { step } else { -step };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.b[i] = sat(wd2 + wd3);
        }

        // DELAYA.
        for i in (2..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = d;
        self.r[2] = self.r[1];
        self.r[1] = r;
        self.p[2] = self.p[1];
        self.p[1] = p;
        self.a[1] = ap1;
        self.a[2] = ap2;

        // FILTEP: pole section.
        let wd1 = (self.a[1] * sat(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat(self.r[2] + self.r[2])) >> 15;
        let sp = sat(wd1 + wd2);

        // FILTEZ: zero section.
        let mut sz = 0;
        for i in (1..7).rev() {
            sz = sat(sz + ((self.b[i] * sat(self.d[i] + self.d[i])) >> 15));
        }
        self.sz = sz;

        // PREDIC.
        self.s = sat(sp + self.sz);
    }
}

/// G.722 64 kbit/s encoder: 16 kHz 16-bit PCM in, one byte per two samples out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    low: Band,
    high: Band,
    /// Transmit QMF delay line, oldest first.
    x: [i32; 24],
    /// An odd trailing sample left over from the previous call.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// A fresh encoder in the reset state of G.722 §6.
    pub fn new() -> Self {
        G722Encoder {
            low: Band::new(32),
            high: Band::new(8),
            x: [0; 24],
            pending: None,
        }
    }

    /// Encodes `pcm` and appends one code byte per sample pair to `out` (the higher band
    /// bits in the two most significant bits, RFC 3551 §4.5.2). A trailing odd sample is kept
    /// and paired with the first sample of the next call.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let mut rest = pcm;
        if let Some(first) = self.pending.take() {
            match rest.split_first() {
                Some((&second, tail)) => {
                    out.push(self.encode_pair(first, second));
                    rest = tail;
                }
                None => {
                    self.pending = Some(first);
                    return;
                }
            }
        }
        out.reserve(rest.len() / 2);
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        if let [last] = pairs.remainder() {
            self.pending = Some(*last);
        }
    }

    /// Encodes one pair of consecutive samples into one code byte.
    #[inline]
    fn encode_pair(&mut self, s0: i16, s1: i16) -> u8 {
        // Transmit QMF (§3.1): shift in two samples, compute the two sub-band signals.
        self.x.copy_within(2.., 0);
        self.x[22] = i32::from(s0);
        self.x[23] = i32::from(s1);
        let mut sum_odd = 0;
        let mut sum_even = 0;
        for i in 0..12 {
            sum_odd += self.x[2 * i] * QMF[i];
            sum_even += self.x[2 * i + 1] * QMF[11 - i];
        }
        let xlow = (sum_even + sum_odd) >> 14;
        let xhigh = (sum_even - sum_odd) >> 14;

        // Lower band: SUBTRA, QUANTL (6-bit), INVQAL (4-bit), LOGSCL, SCALEL, predictor.
        let el = sat(xlow - self.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        // The first interval whose upper decision level exceeds |el|. The scaled levels grow
        // with the index, so a binary search finds the same interval as the linear scan of
        // the Recommendation.
        let det = self.low.det;
        let i = 1 + Q6[1..30].partition_point(|&q| wd >= (q * det) >> 12);
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.adapt_scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.update(dlow);

        // Higher band: SUBTRA, QUANTH (2-bit), INVQAH, LOGSCH, SCALEH, predictor.
        let eh = sat(xhigh - self.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        self.high
            .adapt_scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        self.high.update(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// G.722 64 kbit/s decoder: one byte in, two 16 kHz 16-bit samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay line, oldest first.
    x: [i32; 24],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A fresh decoder in the reset state of G.722 §6.
    pub fn new() -> Self {
        G722Decoder {
            low: Band::new(32),
            high: Band::new(8),
            x: [0; 24],
        }
    }

    /// Decodes `payload` (any length; every byte is one 64 kbit/s code word) and appends two
    /// samples per byte to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &code in payload {
            let (a, b) = self.decode_byte(code);
            out.push(a);
            out.push(b);
        }
    }

    #[inline]
    fn decode_byte(&mut self, code: u8) -> (i16, i16) {
        let ilr = usize::from(code & 0x3F);
        let ih = usize::from(code >> 6);

        // Lower band: INVQBL (6-bit, 64 kbit/s mode) for the output, and the 4-bit INVQAL for
        // the adaptation, which must match the encoder's.
        let dl = (self.low.det * QM6[ilr]) >> 15;
        let rl = (self.low.s + dl).clamp(-16384, 16383);
        let ril = ilr >> 2;
        let dlt = (self.low.det * QM4[ril]) >> 15;
        self.low.adapt_scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.update(dlt);

        // Higher band.
        let dh = (self.high.det * QM2[ih]) >> 15;
        let rh = (self.high.s + dh).clamp(-16384, 16383);
        self.high.adapt_scale(WH[RH2[ih] as usize], 22528, 10);
        self.high.update(dh);

        // Receive QMF (§4.4).
        self.x.copy_within(2.., 0);
        self.x[22] = rl + rh;
        self.x[23] = rl - rh;
        let mut out1 = 0;
        let mut out2 = 0;
        for i in 0..12 {
            out2 += self.x[2 * i] * QMF[i];
            out1 += self.x[2 * i + 1] * QMF[11 - i];
        }
        (sat(out1 >> 11) as i16, sat(out2 >> 11) as i16)
    }
}
