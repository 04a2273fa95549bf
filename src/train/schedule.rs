//! The learning rate as a pure function of the iteration, and the paper's warm-up that decides
//! when the schedule's rate takes over.

use crate::run::checkpoint::LoopState;
use crate::run::config::{OptimConfig, ScheduleConfig};

/// Batches between checks of the warm-up's end condition.
const WARMUP_CHECK_EVERY: i64 = 20;

/// After a batch: the paper's warm-up (Section 4.2, 110 layers) keeps its rate until the training
/// error over the last `WARMUP_CHECK_EVERY` batches is below the threshold; from the next
/// iteration on, the schedule's rate applies (`state.warmup_ended_at`). The counts live in the
/// loop state, so a resumed run ends its warm-up where it would have.
pub fn update_warmup(state: &mut LoopState, schedule: &ScheduleConfig) {
    let Some(warmup) = &schedule.warmup else { return };
    if state.warmup_ended_at.is_some() {
        return;
    }
    state.warmup_batches += 1;
    if state.warmup_batches < WARMUP_CHECK_EVERY {
        return;
    }
    let error = 100.0 * state.warmup_wrong as f64 / state.warmup_seen.max(1) as f64;
    if error < warmup.until_train_err {
        state.warmup_ended_at = Some(state.iteration + 1);
    }
    (state.warmup_wrong, state.warmup_seen, state.warmup_batches) = (0, 0, 0);
}

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
    fn the_warm_up_ends_after_a_check_below_the_threshold() {
        let mut schedule = ScheduleConfig::paper_shape(1000, 100);
        schedule.warmup = Some(crate::run::config::Warmup::default());
        let mut state = LoopState::default();
        for iteration in 0..40 {
            // 90% wrong for the first 20 batches, then 50%.
            let wrong = if iteration < 20 { 90 } else { 50 };
            state.record_batch(1.0, wrong, 100, 0.1);
            update_warmup(&mut state, &schedule);
            state.iteration = iteration + 1;
        }
        assert_eq!(state.warmup_ended_at, Some(40), "ended at the second check, after iteration 39");
        let mut plain = LoopState::default();
        update_warmup(&mut plain, &ScheduleConfig::paper_shape(1000, 100));
        assert_eq!(plain, LoopState::default(), "no warm-up: nothing counted");
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
