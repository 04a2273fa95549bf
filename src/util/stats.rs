//! The mean and the sample standard deviation, one definition for the experiment's statistics,
//! the report's tables and the analyses.

/// The mean of `values` (NaN for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The mean and the sample standard deviation (n - 1) of `values`.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_sd_divides_by_n_minus_one_and_is_nan_for_one_value() {
        // Deviations 1.5, 0.5, 0.5, 1.5: squares sum to 5, over n - 1 = 3.
        assert_eq!(mean_sd(&[1.0, 2.0, 3.0, 4.0]), (2.5, (5.0f64 / 3.0).sqrt()));
        assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        let (one, sd) = mean_sd(&[7.25]);
        assert_eq!(one, 7.25);
        assert!(sd.is_nan(), "one value has no spread to estimate: {sd}");
        let (none, sd) = mean_sd(&[]);
        assert!(none.is_nan() && mean(&[]).is_nan());
        assert_eq!(sd, 0.0, "an empty sum over -1");
    }
}
