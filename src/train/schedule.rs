//! The learning rate as a pure function of the iteration.

use crate::run::config::{OptimConfig, ScheduleConfig};

/// The learning rate for iteration `iter` (0-based): the warm-up rate while the warm-up lasts
/// (it ended at `warmup_ended_at`, if it has), else the base rate times `lr_decay` for every step
/// already passed.
pub fn learning_rate(
    optim: &OptimConfig,
    schedule: &ScheduleConfig,
    iter: usize,
    warmup_ended_at: Option<usize>,
) -> f64 {
    if let Some(warmup) = &schedule.warmup {
        if warmup_ended_at.is_none_or(|end| iter < end) {
            return warmup.lr;
        }
    }
    let steps_passed = schedule.lr_steps.iter().filter(|&&step| iter >= step).count();
    optim.lr * schedule.lr_decay.powi(steps_passed as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_by_ten_at_each_step() {
        let optim = OptimConfig::default();
        let schedule = ScheduleConfig::paper_shape(64_000, 1000);
        let lr = |i| learning_rate(&optim, &schedule, i, None);
        assert_eq!(lr(0), 0.1);
        assert_eq!(lr(31_999), 0.1);
        assert!((lr(32_000) - 0.01).abs() < 1e-12);
        assert!((lr(47_999) - 0.01).abs() < 1e-12);
        assert!((lr(48_000) - 0.001).abs() < 1e-12);
        assert!((lr(63_999) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn the_warm_up_rate_holds_until_the_switch() {
        let optim = OptimConfig::default();
        let mut schedule = ScheduleConfig::paper_shape(64_000, 1000);
        schedule.warmup = Some(crate::run::config::Warmup::default());
        assert_eq!(learning_rate(&optim, &schedule, 5000, None), 0.01);
        assert_eq!(learning_rate(&optim, &schedule, 399, Some(400)), 0.01);
        assert_eq!(learning_rate(&optim, &schedule, 400, Some(400)), 0.1);
        assert!((learning_rate(&optim, &schedule, 40_000, Some(400)) - 0.01).abs() < 1e-12);
    }
}
