//! The claims' statistics against SciPy on fixed numbers: the paired and the Welch 95%
//! intervals and Student's t quantiles (SciPy is installed into the project's venv by `./run test`).

mod common;

use reslab::experiment::stats;

/// SciPy's answer to `script` (which prints one number per line).
fn scipy(script: &str) -> Vec<f64> {
    let output = common::python()
        .args(["-c", script])
        .output()
        .expect("the project's Python (.venv/bin/python; run scripts/setup.sh)");
    assert!(
        output.status.success(),
        "SciPy (installed by ./run test into .venv): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).lines().map(|l| l.trim().parse().expect("a number")).collect()
}

const A: [f64; 5] = [31.2, 28.4, 35.9, 30.1, 29.7];
const B: [f64; 5] = [24.8, 25.1, 27.3, 22.9, 26.0];
const C: [f64; 3] = [18.0, 23.5, 20.25];

fn close(ours: f64, theirs: f64, what: &str) {
    assert!((ours - theirs).abs() < 1e-6 * theirs.abs().max(1.0), "{what}: reslab {ours}, SciPy {theirs}");
}

#[test]
fn paired_and_welch_intervals_and_t_quantiles_match_scipy() {
    let list = |v: &[f64]| format!("{v:?}");
    let script = format!(
        "from scipy import stats\n\
         a, b, c = {}, {}, {}\n\
         for r in (stats.ttest_rel(b, a), stats.ttest_ind(c, a, equal_var=False)):\n\
         \x20   ci = r.confidence_interval(0.95)\n\
         \x20   print(ci.low); print(ci.high); print(r.df)\n\
         for df in (1, 2.5, 4, 7.3, 30, 200):\n\
         \x20   print(stats.t.ppf(0.975, df))\n",
        list(&A),
        list(&B),
        list(&C)
    );
    let expected = scipy(&script);
    assert_eq!(expected.len(), 12, "SciPy printed {expected:?}");
    let paired = stats::paired(&A, &B).unwrap();
    close(paired.low, expected[0], "paired low");
    close(paired.high, expected[1], "paired high");
    close(paired.df, expected[2], "paired df");
    let welch = stats::welch(&A, &C).unwrap();
    close(welch.low, expected[3], "Welch low");
    close(welch.high, expected[4], "Welch high");
    close(welch.df, expected[5], "Welch df");
    for (df, theirs) in [1.0, 2.5, 4.0, 7.3, 30.0, 200.0].into_iter().zip(&expected[6..]) {
        close(stats::t_quantile(0.975, df), *theirs, &format!("t quantile, df {df}"));
    }
}
