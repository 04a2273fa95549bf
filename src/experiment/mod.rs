//! Experiments: a TOML file naming the runs, the presets (schedule lengths) and what the paper
//! says should come out; planned into run configurations, run locally, aggregated into a report.

pub mod aggregate;
pub mod catalogue;
pub mod claim_outputs;
pub mod claims;
pub mod cost;
pub mod judging;
pub mod launch;
pub mod layout;
pub mod on_demand;
pub mod output_set;
pub mod overrides;
pub mod paper;
pub mod plan;
pub mod preset;
pub mod results;
pub mod reuse;
pub mod rounds;
pub mod runner;
pub mod sbatch;
pub mod seeds_on_demand;
pub mod sequential;
pub mod slurm;
pub mod spec;
pub mod speed;
pub mod stats;
pub mod status;
pub mod study;
pub mod study_dir;
pub mod study_record;
pub mod tracking;

pub use preset::Preset;
pub use spec::Experiment;
