//! A MOS estimate from network figures, after the ITU-T G.107 E-model simplified for VoIP
//! monitoring (as in RFC 3611 §4.7.5 practice): R = 93.2 − Id − Ie,eff, then MOS from R.

/// Estimated MOS (1.0–4.5) from round-trip time, jitter (both ms) and packet loss (0–100 %).
/// `bpl` is the codec's packet-loss robustness (G.107 Appendix I: 25.1 for G.711 with PLC).
pub fn mos_estimate(rtt_ms: f64, jitter_ms: f64, loss_percent: f64, bpl: f64) -> f64 {
    // One-way mouth-to-ear delay: half the RTT, plus the jitter buffer (about 2x jitter)
    // and 20 ms of packetisation.
    let d = rtt_ms / 2.0 + 2.0 * jitter_ms + 20.0;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = loss_percent.clamp(0.0, 100.0);
    let ie_eff = 95.0 * ppl / (ppl + bpl.max(1.0));
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    let mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
    mos.clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::mos_estimate;

    #[test]
    fn clean_calls_score_high_and_impairments_lower_it() {
        let clean = mos_estimate(20.0, 2.0, 0.0, 25.1);
        assert!(clean > 4.3, "{clean}");
        let lossy = mos_estimate(20.0, 2.0, 5.0, 25.1);
        assert!(lossy < clean - 0.5, "{lossy}");
        let slow = mos_estimate(600.0, 2.0, 0.0, 25.1);
        assert!(slow < clean - 0.5, "{slow}");
        assert_eq!(
            mos_estimate(0.0, 0.0, 100.0, 25.1),
            1.0_f64.max(mos_estimate(0.0, 0.0, 100.0, 25.1))
        );
    }
}
