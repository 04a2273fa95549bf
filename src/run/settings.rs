//! `--set KEY=VALUE` and experiment grids: any field of a run's configuration, named by a short
//! key, typed and checked where it is parsed, applied to a [`RunConfig`] in one place.
//!
//! Keys are the configuration's own fields (`lr` is `optim.lr`; the dotted path works too). A
//! value is parsed as its key's type; `lr_steps` takes a list in brackets, of fractions of the run
//! (`[0.5,0.75]`) or iterations (`[32000,48000]`). On the command line, commas outside brackets
//! give several values (`--set lr=0.1,0.05`): a grid axis, which the planner crosses with the
//! runs and seeds.

use super::config::RunConfig;
use anyhow::{bail, Result};
use clap::ValueEnum;

impl PartialEq for ValueKind {
    /// The same kind of value (choices compared by their names).
    fn eq(&self, other: &ValueKind) -> bool {
        match (self, other) {
            (ValueKind::Choice(a), ValueKind::Choice(b)) => a() == b(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// What a key's values are.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    /// A finite number.
    Number,
    /// A whole number, 0 or more.
    Count,
    /// `true` or `false`.
    Flag,
    /// One of the names `choices` gives.
    Choice(fn() -> Vec<String>),
    /// Learning-rate steps: fractions of the run below 1, or iterations.
    Steps,
}

impl ValueKind {
    /// The type as `reslab keys` shows it.
    pub fn describe(&self) -> String {
        match self {
            ValueKind::Number => "number".into(),
            ValueKind::Count => "whole number".into(),
            ValueKind::Flag => "true|false".into(),
            ValueKind::Choice(choices) => choices().join("|"),
            ValueKind::Steps => "[fractions] or [iterations]".into(),
        }
    }
}

/// A key of a run's configuration that `--set` and `[grid]` may change.
#[derive(Debug, PartialEq)]
pub struct Key {
    /// The short name (`lr`).
    pub name: &'static str,
    /// Its place in `config.toml` (`optim.lr`).
    pub path: &'static str,
    /// Its values.
    pub kind: ValueKind,
    /// What it is, for `reslab keys`.
    pub doc: &'static str,
}

fn names<T: ValueEnum>() -> Vec<String> {
    T::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|v| v.get_name().to_string()).collect()
}

/// Every settable key, in the order names and tables list them. The seed (`--seed`, `--seeds`),
/// the thread count and the precision (`--threads`, `--precision`) have flags of their own; the
/// model and data source are what a run is (`--model`, `[[runs]]`, `--data`).
pub const KEYS: &[Key] = &[
    Key { name: "lr", path: "optim.lr", kind: ValueKind::Number, doc: "base learning rate" },
    Key { name: "momentum", path: "optim.momentum", kind: ValueKind::Number, doc: "SGD momentum, in [0, 1)" },
    Key {
        name: "weight_decay",
        path: "optim.weight_decay",
        kind: ValueKind::Number,
        doc: "L2 weight decay on every parameter",
    },
    Key { name: "batch_size", path: "optim.batch_size", kind: ValueKind::Count, doc: "images per batch (global)" },
    Key { name: "iters", path: "schedule.iters", kind: ValueKind::Count, doc: "training iterations" },
    Key {
        name: "lr_steps",
        path: "schedule.lr_steps",
        kind: ValueKind::Steps,
        doc: "where the learning rate is multiplied by lr_decay",
    },
    Key { name: "lr_decay", path: "schedule.lr_decay", kind: ValueKind::Number, doc: "the factor at each lr step" },
    Key {
        name: "eval_every",
        path: "schedule.eval_every",
        kind: ValueKind::Count,
        doc: "iterations between evaluations (metrics rows)",
    },
    Key {
        name: "warmup",
        path: "schedule.warmup",
        kind: ValueKind::Flag,
        doc: "the paper's warm-up: lr 0.01 until the training error is below 80%",
    },
    Key { name: "warmup_lr", path: "schedule.warmup.lr", kind: ValueKind::Number, doc: "the warm-up's learning rate" },
    Key {
        name: "warmup_until_train_err",
        path: "schedule.warmup.until_train_err",
        kind: ValueKind::Number,
        doc: "the training error (%) that ends the warm-up",
    },
    Key {
        name: "shortcut",
        path: "model.shortcut",
        kind: ValueKind::Choice(names::<crate::model::Shortcut>),
        doc: "the shortcut option of residual nets",
    },
    Key {
        name: "block",
        path: "model.block",
        kind: ValueKind::Choice(names::<crate::model::BlockVariant>),
        doc: "where BN and ReLU sit in each block (CIFAR nets)",
    },
    Key {
        name: "gate_bias",
        path: "model.gate_bias",
        kind: ValueKind::Number,
        doc: "highway shortcuts: the gates' initial bias",
    },
    Key {
        name: "bottleneck_stride",
        path: "model.bottleneck_stride",
        kind: ValueKind::Choice(names::<crate::model::BottleneckStride>),
        doc: "bottleneck nets: which convolution strides",
    },
    Key {
        name: "normalization",
        path: "data.normalization",
        kind: ValueKind::Choice(names::<crate::data::Normalization>),
        doc: "how pixels are normalised",
    },
    Key {
        name: "eval_set",
        path: "data.eval_set",
        kind: ValueKind::Choice(names::<crate::data::EvalSet>),
        doc: "what test_err is measured on",
    },
    Key {
        name: "augment",
        path: "data.augment",
        kind: ValueKind::Flag,
        doc: "the paper's augmentation (pad 4, crop, flip)",
    },
    Key {
        name: "input_size",
        path: "data.input_size",
        kind: ValueKind::Count,
        doc: "image folders: the network's input size",
    },
    Key {
        name: "test_crops",
        path: "data.test_crops",
        kind: ValueKind::Choice(names::<crate::data::folder::TestCrops>),
        doc: "image folders: centre or 10-crop testing",
    },
    Key {
        name: "channels_last",
        path: "channels_last",
        kind: ValueKind::Flag,
        doc: "keep weights and activations channels-last",
    },
    Key {
        name: "checkpoint_every",
        path: "checkpoint_every",
        kind: ValueKind::Count,
        doc: "iterations between checkpoints (0: at every metrics row)",
    },
];

impl Key {
    /// The network option this key sets, where only some networks have it.
    pub fn partial_option(&self) -> Option<crate::model::options::PartialOption> {
        use crate::model::options::PartialOption;
        match self.name {
            "shortcut" => Some(PartialOption::Shortcut),
            "bottleneck_stride" => Some(PartialOption::BottleneckStride),
            _ => None,
        }
    }
}

impl Setting {
    /// Whether a run of `model` has what this setting changes (a shortcut option needs shortcuts).
    pub fn fits(&self, model: &crate::model::ModelSpec) -> bool {
        self.key.partial_option().is_none_or(|option| option.missing_from(model).is_none())
    }

    /// An error naming the setting where a run of `model` lacks what it changes.
    pub fn check_fits(&self, model: &crate::model::ModelSpec) -> Result<()> {
        match self.key.partial_option() {
            Some(option) => option.check(model, &format!("--set {self}")),
            None => Ok(()),
        }
    }
}

/// A parsed value of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Number(f64),
    /// A whole number.
    Count(u64),
    /// A flag.
    Flag(bool),
    /// A choice's name.
    Choice(String),
    /// Steps: all fractions of the run, or all iterations.
    Steps(Steps),
}

/// `lr_steps` as given.
#[derive(Debug, Clone, PartialEq)]
pub enum Steps {
    /// Fractions of the run's iterations (each in (0, 1)).
    Fractions(Vec<f64>),
    /// Iterations.
    Iterations(Vec<u64>),
}

impl std::fmt::Display for Value {
    /// The canonical text: what run names, `--set` arguments and tables show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x}"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Flag(b) => write!(f, "{b}"),
            Value::Choice(name) => f.write_str(name),
            Value::Steps(Steps::Fractions(list)) => {
                write!(f, "[{}]", list.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
            }
            Value::Steps(Steps::Iterations(list)) => {
                write!(f, "[{}]", list.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// One key set to one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The key.
    pub key: &'static Key,
    /// Its value.
    pub value: Value,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key.name, self.value)
    }
}

/// One key with one value or several (a grid axis).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The key.
    pub key: &'static Key,
    /// Its values, in the order given, none twice.
    pub values: Vec<Value>,
}

impl Axis {
    /// Whether it varies (two or more values): a grid axis, part of the run names.
    pub fn varies(&self) -> bool {
        self.values.len() > 1
    }

    /// Its one value as a setting, where it has one.
    pub fn single(&self) -> Option<Setting> {
        match self.values.as_slice() {
            [value] => Some(Setting { key: self.key, value: value.clone() }),
            _ => None,
        }
    }

    /// The argument that gives it (`lr=0.1,0.05`).
    pub fn arg_text(&self) -> String {
        let values: Vec<String> = self.values.iter().map(Value::to_string).collect();
        format!("{}={}", self.key.name, values.join(","))
    }

    /// `KEY=V1,V2` as `--set` takes it (commas inside brackets belong to a list).
    pub fn parse(text: &str) -> Result<Axis> {
        let Some((key, values)) = text.split_once('=') else {
            bail!(
                "--set '{}': expected KEY=VALUE (or KEY=V1,V2 for a grid); `reslab keys` lists the keys",
                text.escape_debug()
            );
        };
        let key = key_named(key.trim())?;
        let values =
            split_top_level(values).into_iter().map(|v| parse_value(key, v.trim())).collect::<Result<Vec<_>>>()?;
        Axis::new(key, values)
    }

    /// A `[grid]` entry: `key = [v1, v2]` (or one value).
    pub fn from_toml(key: &str, values: &toml::Value) -> Result<Axis> {
        let key = key_named(key)?;
        let list = match values {
            // `lr_steps = [0.5, 0.75]` is one value; a grid of them is a list of lists.
            toml::Value::Array(items) if key.kind != ValueKind::Steps || items.iter().all(|i| i.is_array()) => {
                items.clone()
            }
            one => vec![one.clone()],
        };
        let values = list.iter().map(|v| parse_value(key, &toml_text(v))).collect::<Result<Vec<_>>>()?;
        Axis::new(key, values)
    }

    fn new(key: &'static Key, values: Vec<Value>) -> Result<Axis> {
        if values.is_empty() {
            bail!("{}: no values; expected one or more", key.name);
        }
        if let Some(twice) = values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)) {
            bail!("{}: the value {} is given twice", key.name, twice.1);
        }
        Ok(Axis { key, values })
    }
}

/// What other tools call some keys, for the suggestions of an unknown key (not accepted as keys:
/// a run's name and `config.toml` spell each key one way).
const COMMON_NAMES: &[(&str, &str)] = &[
    ("learning_rate", "lr"),
    ("base_lr", "lr"),
    ("wd", "weight_decay"),
    ("l2", "weight_decay"),
    ("batch", "batch_size"),
    ("bs", "batch_size"),
    ("iterations", "iters"),
    ("max_iter", "iters"),
    ("max_steps", "iters"),
    ("milestones", "lr_steps"),
    ("lr_milestones", "lr_steps"),
    ("gamma", "lr_decay"),
    ("lr_gamma", "lr_decay"),
    ("mom", "momentum"),
    ("augmentation", "augment"),
    ("aug", "augment"),
    ("eval_interval", "eval_every"),
    ("val_every", "eval_every"),
    ("image_size", "input_size"),
    ("img_size", "input_size"),
    ("save_every", "checkpoint_every"),
    ("shortcut_type", "shortcut"),
    ("nhwc", "channels_last"),
];

/// The key named `name` (short or dotted); an error naming the nearest keys.
pub fn key_named(name: &str) -> Result<&'static Key> {
    if let Some(key) = KEYS.iter().find(|k| k.name == name || k.path == name) {
        return Ok(key);
    }
    // Abbreviations (`wd`), parts (`decay`) and other tools' names first, then by edit distance
    // to the key or another tool's name for it (`lerning_rate` is near `learning_rate`: `lr`).
    let initials = |k: &str| k.split('_').filter_map(|w| w.chars().next()).collect::<String>();
    let score = |k: &Key| match k.name.contains(name) || initials(k.name) == name {
        true => 0,
        false => {
            let other_names = COMMON_NAMES.iter().filter(|(_, key)| *key == k.name).map(|(other, _)| *other);
            1 + other_names.chain([k.name]).map(|n| strsim::levenshtein(name, n)).min().unwrap_or_default()
        }
    };
    let mut nearest: Vec<(usize, &str)> = KEYS.iter().map(|k| (score(k), k.name)).collect();
    nearest.sort();
    let near: Vec<&str> = nearest.iter().take(3).map(|(_, n)| *n).collect();
    bail!("unknown key '{}'; nearest: {} (`reslab keys` lists them all)", name.escape_debug(), near.join(", "))
}

/// `text` split at commas outside brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => format!("[{}]", items.iter().map(toml_text).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// `text` as a value of `key`; an error naming the key, the value and what it takes.
pub fn parse_value(key: &'static Key, text: &str) -> Result<Value> {
    let wrong = || anyhow::anyhow!("{}={}: expected {}", key.name, text.escape_debug(), expected(key));
    let number = |t: &str| t.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    Ok(match key.kind {
        ValueKind::Number => Value::Number(number(text).ok_or_else(wrong)?),
        ValueKind::Count => Value::Count(text.parse::<u64>().map_err(|_| wrong())?),
        ValueKind::Flag => Value::Flag(crate::util::parse_flag(text).ok_or_else(wrong)?),
        ValueKind::Choice(choices) => {
            let choices = choices();
            let found = choices.iter().find(|c| c.eq_ignore_ascii_case(text)).ok_or_else(wrong)?;
            Value::Choice(found.clone())
        }
        ValueKind::Steps => {
            let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(wrong)?;
            let items: Vec<&str> = inner.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
            let steps = if items.iter().all(|t| t.parse::<u64>().is_ok()) {
                Steps::Iterations(items.iter().map(|t| t.parse().expect("checked")).collect())
            } else {
                let fractions: Option<Vec<f64>> =
                    items.iter().map(|t| number(t).filter(|x| *x > 0.0 && *x < 1.0)).collect();
                Steps::Fractions(fractions.ok_or_else(wrong)?)
            };
            let increasing = match &steps {
                Steps::Iterations(list) => list.windows(2).all(|w| w[0] <= w[1]),
                Steps::Fractions(list) => list.windows(2).all(|w| w[0] <= w[1]),
            };
            if !increasing {
                return Err(wrong());
            }
            Value::Steps(steps)
        }
    })
}

fn expected(key: &Key) -> String {
    match key.kind {
        ValueKind::Number => "a number (e.g. 0.1, 1e-4)".into(),
        ValueKind::Count => "a whole number, 0 or more".into(),
        ValueKind::Flag => crate::util::FLAG_VALUES.into(),
        ValueKind::Choice(choices) => format!("one of {}", choices().join(", ")),
        ValueKind::Steps => {
            "a list in brackets, increasing: fractions of the run ([0.5,0.75]) or iterations ([32000,48000])".into()
        }
    }
}

/// `config` with `settings` applied in order, then checked as a whole (`validate`). Where `iters`
/// changes and `lr_steps` is not set, the steps keep their place in the run (the paper's 1/2 and
/// 3/4 stay 1/2 and 3/4); fractions of `lr_steps` are of the final `iters`.
pub fn apply(config: &RunConfig, settings: &[Setting]) -> Result<RunConfig> {
    if settings.is_empty() {
        return Ok(config.clone());
    }
    let mut table: toml::Table = toml::from_str(&config.to_toml()).expect("a run config reads back");
    let mut fractions = None;
    for setting in settings {
        match (&setting.value, setting.key.name) {
            (Value::Steps(Steps::Fractions(list)), _) => fractions = Some(list.clone()),
            (value @ Value::Steps(Steps::Iterations(_)), _) => {
                fractions = None;
                set(&mut table, setting.key.path, value.to_toml());
            }
            (Value::Flag(false), "warmup") => {
                if let Some(toml::Value::Table(schedule)) = table.get_mut("schedule") {
                    schedule.remove("warmup");
                }
            }
            (Value::Flag(true), "warmup") => ensure_warmup(&mut table),
            (value, name) => {
                if name.starts_with("warmup_") {
                    ensure_warmup(&mut table);
                }
                set(&mut table, setting.key.path, value.to_toml());
            }
        }
    }
    let text = toml::to_string(&table).expect("a table serialises");
    let named: Vec<String> = settings.iter().map(Setting::to_string).collect();
    let mut changed: RunConfig = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--set {}: {}", named.join(" "), super::config::one_line(&e.to_string())))?;
    let steps_given = settings.iter().any(|s| s.key.name == "lr_steps");
    let iterations_given = steps_given && fractions.is_none();
    let (old, new) = (config.schedule.iters, changed.schedule.iters);
    if let Some(fractions) = fractions {
        changed.schedule.lr_steps = fractions.iter().map(|f| (f * new as f64).round() as usize).collect();
    } else if !steps_given && old != new && old > 0 {
        let scale = |step: &usize| ((*step as f64) * new as f64 / old as f64).round() as usize;
        changed.schedule.lr_steps = config.schedule.lr_steps.iter().map(scale).collect();
    }
    if iterations_given {
        let s = &changed.schedule;
        super::config::check_lr_steps(&s.lr_steps, s.iters)
            .map_err(|e| e.context(format!("--set {}", named.join(" "))))?;
    }
    changed.validate().map_err(|e| e.context(format!("--set {}", named.join(" "))))?;
    Ok(changed)
}

fn ensure_warmup(table: &mut toml::Table) {
    if let Some(toml::Value::Table(schedule)) = table.get_mut("schedule") {
        if !schedule.contains_key("warmup") {
            let default = super::config::Warmup::default();
            let mut warmup = toml::Table::new();
            warmup.insert("lr".into(), toml::Value::Float(default.lr));
            warmup.insert("until_train_err".into(), toml::Value::Float(default.until_train_err));
            schedule.insert("warmup".into(), toml::Value::Table(warmup));
        }
    }
}

impl Value {
    /// The value as TOML writes it (in config.toml, a `[[runs]]` entry's `set`, a claim's `point`).
    pub fn to_toml(&self) -> toml::Value {
        match self {
            Value::Number(x) => toml::Value::Float(*x),
            Value::Count(n) => toml::Value::Integer(*n as i64),
            Value::Flag(b) => toml::Value::Boolean(*b),
            Value::Choice(name) => toml::Value::String(name.clone()),
            Value::Steps(Steps::Fractions(list)) => toml::Value::Array(list.iter().map(|&x| x.into()).collect()),
            Value::Steps(Steps::Iterations(list)) => {
                toml::Value::Array(list.iter().map(|&n| toml::Value::Integer(n as i64)).collect())
            }
        }
    }
}

fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path has a name");
    let mut at = table;
    for part in parts {
        let entry = at.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = entry.as_table_mut().expect("a configuration's section is a table");
    }
    at.insert(last.to_string(), value);
}

/// Each key's value in `config` (the defaults, for the paper's protocol), as `reslab keys` shows it.
pub fn current(config: &RunConfig, key: &Key) -> String {
    let table: toml::Table = toml::from_str(&config.to_toml()).expect("a run config reads back");
    let mut at = &toml::Value::Table(table);
    for part in key.path.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            // Left out of config.toml at its default: a flag's is off, a choice's its first
            // variant (each enum lists its default first), a number's none.
            None => {
                return match key.kind {
                    ValueKind::Flag => "false".into(),
                    ValueKind::Choice(choices) => choices()[0].clone(),
                    _ => "-".into(),
                }
            }
        }
    }
    match at {
        toml::Value::Table(_) if key.kind == ValueKind::Flag => "true".into(),
        other => toml_text(other),
    }
}

/// The paper's CIFAR-10 protocol as a configuration (resnet-20, 64k iterations): the defaults
/// `reslab keys` shows.
fn paper_defaults() -> RunConfig {
    use super::config::TrainOptions;
    use crate::model::Precision;
    RunConfig::of_options(
        crate::model::ModelSpec::new(crate::model::Family::Cifar, crate::model::Kind::Residual, 20)
            .expect("resnet-20 is a CIFAR net"),
        crate::data::DataConfig::new(crate::data::DataSource::Embedded),
        &TrainOptions::default(),
        Precision::Fp32,
    )
}

/// `reslab keys`: every key with its place in `config.toml`, its type, its default (the paper's
/// protocol, 64k iterations) and what it is.
pub fn keys_table() -> (Vec<&'static str>, Vec<Vec<String>>) {
    let defaults = paper_defaults();
    // Keys of parts that are off by default (the warm-up, highway gates) show their values when on.
    let mut when_on = paper_defaults();
    when_on.schedule.warmup = Some(super::config::Warmup::default());
    when_on.model.gate_bias = Some(crate::model::spec::DEFAULT_GATE_BIAS);
    let rows = KEYS
        .iter()
        .map(|k| {
            let default = match current(&defaults, k).as_str() {
                "-" => format!("{} when on", current(&when_on, k)),
                value => value.to_string(),
            };
            vec![k.name.to_string(), k.path.to_string(), k.kind.describe(), default, k.doc.to_string()]
        })
        .collect();
    (vec!["key", "in config.toml", "type", "default", "what"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(text: &str) -> Axis {
        Axis::parse(text).unwrap()
    }

    #[test]
    fn every_key_is_a_field_of_the_saved_configuration() {
        let mut config = RunConfig::example();
        config.schedule.warmup = Some(super::super::config::Warmup::default());
        config.model.gate_bias = Some(-2.0);
        for key in KEYS {
            assert_ne!(current(&config, key), "-", "{} ({}) is not in config.toml", key.name, key.path);
        }
        assert_eq!(current(&RunConfig::example(), key_named("block").unwrap()), "post");
        assert_eq!(current(&RunConfig::example(), key_named("warmup").unwrap()), "false");
        assert_eq!(current(&RunConfig::example(), key_named("lr_steps").unwrap()), "[32000,48000]");
    }

    #[test]
    fn values_are_typed_and_bad_ones_named_with_what_is_accepted() {
        let config = RunConfig::example();
        let set = |texts: &[&str]| {
            let settings: Vec<Setting> = texts.iter().map(|t| axis(t).single().unwrap()).collect();
            apply(&config, &settings)
        };
        let changed = set(&["lr=0.05", "weight_decay=0", "shortcut=b", "augment=false", "batch_size=64"]).unwrap();
        assert_eq!(changed.optim.lr, 0.05);
        assert_eq!(changed.optim.weight_decay, 0.0);
        assert_eq!(changed.model.shortcut, crate::model::Shortcut::B);
        assert!(!changed.data.augment);
        assert_eq!(changed.optim.batch_size, 64);
        // Steps as fractions of the final length, or iterations; a new length moves the steps along.
        let changed = set(&["lr_steps=[0.25,0.5]", "iters=1000"]).unwrap();
        assert_eq!(changed.schedule.lr_steps, [250, 500]);
        assert_eq!(set(&["lr_steps=[10,20]"]).unwrap().schedule.lr_steps, [10, 20]);
        assert_eq!(set(&["iters=6400"]).unwrap().schedule.lr_steps, [3200, 4800]);
        let warm = set(&["warmup_lr=0.02"]).unwrap().schedule.warmup.unwrap();
        assert_eq!((warm.lr, warm.until_train_err), (0.02, 80.0));
        assert!(set(&["warmup=true", "warmup=false"]).unwrap().schedule.warmup.is_none());

        for (bad, expected) in [
            ("lrr=0.1", "unknown key 'lrr'; nearest: lr,"),
            ("lr=fast", "lr=fast: expected a number"),
            ("shortcut=D", "expected one of A, B, C, highway"),
            ("batch_size=-1", "expected a whole number"),
            ("lr_steps=0.5", "expected a list in brackets"),
            ("lr_steps=[0.75,0.5]", "increasing"),
            ("lr", "expected KEY=VALUE"),
            ("lr=0.1,0.1", "given twice"),
        ] {
            let err = format!("{:#}", Axis::parse(bad).unwrap_err());
            assert!(err.contains(expected), "{bad}: {err}");
        }
        for (bad, nearest) in
            [("lerning_rate", "lr"), ("learning_rate", "lr"), ("wd", "weight_decay"), ("bs", "batch_size")]
        {
            let err = format!("{:#}", key_named(bad).unwrap_err());
            assert!(err.contains(&format!("nearest: {nearest},")), "{bad}: {err}");
        }
        for flag in ["True", "YES", "on", "1"] {
            assert_eq!(axis(&format!("augment={flag}")).values, [Value::Flag(true)], "{flag}");
        }
        assert_eq!(axis("augment=Off").values, [Value::Flag(false)]);
        let err = format!("{:#}", set(&["lr_steps=[99999]", "iters=10"]).unwrap_err());
        assert!(
            err.contains("--set lr_steps=[99999] iters=10: step 99999 is outside the run's 10 iterations"),
            "{err}"
        );
        let err = format!("{:#}", set(&["momentum=1.5"]).unwrap_err());
        assert!(err.contains("--set momentum=1.5") && err.contains("optim.momentum is 1.5"), "{err}");
    }

    #[test]
    fn commas_outside_brackets_make_a_grid_axis_and_grid_tables_read_the_same() {
        let lr = axis("lr=0.1,0.05,0.02");
        assert!(lr.varies());
        assert_eq!(lr.arg_text(), "lr=0.1,0.05,0.02");
        let steps = axis("lr_steps=[0.5,0.75],[0.25,0.5]");
        assert_eq!(steps.values.len(), 2);
        assert_eq!(steps.values[0].to_string(), "[0.5,0.75]");
        assert!(!axis("lr_steps=[0.5,0.75]").varies());
        let from_file: toml::Table = toml::from_str("wd = [1e-4, 0]\nlr_steps = [0.5, 0.75]").unwrap();
        let err = format!("{:#}", Axis::from_toml("wd", &from_file["wd"]).unwrap_err());
        assert!(err.contains("nearest: weight_decay"), "{err}");
        let steps = Axis::from_toml("lr_steps", &from_file["lr_steps"]).unwrap();
        assert!(!steps.varies(), "one list of steps is one value");
        let wd: toml::Value = toml::from_str::<toml::Table>("x = [1e-4, 0]").unwrap()["x"].clone();
        let wd = Axis::from_toml("weight_decay", &wd).unwrap();
        assert_eq!(wd.values, [Value::Number(1e-4), Value::Number(0.0)]);
        assert_eq!(wd.values[1].to_string(), "0");
        assert_eq!(key_named("optim.weight_decay").unwrap().name, "weight_decay");
    }
}
