//! Labels as they come in a user's file (integers, decimals or strings)
//! and the classes they become: the training labels, sorted (numerically
//! when every one is an integer, else by code points, as
//! `text_dataset_from_directory` sorts its class folders), numbered 0, 1,
//! ... in that order.
//!
//! When every training label is a number, labels that are the same number
//! however written (`1`, `1.0`, `01`, `1e0`) are one class: a spreadsheet
//! that saved some labels as `1.0` meant the class `1`. Such a merged class
//! is named by its integer form (`1`), or its shortest spelling when it is
//! not an integer; the file's own spellings stay the names when no two of
//! them are the same number. String labels are compared as they are
//! (case-sensitive). A test label finds the training class of its number.
use std::collections::HashMap;

use anyhow::{bail, Result};

/// `y` holds a class as one byte.
pub const MAX_CLASSES: usize = 256;

/// The labels seen so far, each spelling numbered in the order it first
/// appeared.
#[derive(Debug)]
pub(super) struct LabelSet {
    numbers: HashMap<String, u32>,
    spellings: Vec<String>,
    /// The number of each spelling while every spelling is one; `None`
    /// once one is not (then every spelling is its own class).
    values: Option<Vec<Number>>,
    /// The first spelling of each number, while every spelling is one.
    by_value: HashMap<Number, u32>,
    /// Test labels that matched a training label by number only.
    read_by_value: Vec<(String, u32)>,
}

impl Default for LabelSet {
    fn default() -> Self {
        LabelSet {
            numbers: HashMap::new(),
            spellings: Vec::new(),
            values: Some(Vec::new()),
            by_value: HashMap::new(),
            read_by_value: Vec::new(),
        }
    }
}

impl LabelSet {
    /// The number of a training label, new ones included. `None` once there
    /// would be more than [`MAX_CLASSES`] classes.
    pub fn add(&mut self, label: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(label) {
            return Some(n);
        }
        let value = self.values.as_ref().and_then(|_| Number::parse(label));
        let classes_after = match &value {
            Some(v) => self.by_value.len() + usize::from(!self.by_value.contains_key(v)),
            None => self.spellings.len() + 1,
        };
        if classes_after > MAX_CLASSES {
            return None;
        }
        let n = self.spellings.len() as u32;
        match (value, &mut self.values) {
            (Some(v), Some(values)) => {
                self.by_value.entry(v.clone()).or_insert(n);
                values.push(v);
            }
            _ => {
                self.values = None;
                self.by_value.clear();
            }
        }
        self.numbers.insert(label.to_owned(), n);
        self.spellings.push(label.to_owned());
        Some(n)
    }

    /// The number of a test label: a training label's, or, when every
    /// training label is a number, that of a training label of the same
    /// number (remembered, for [`LabelSet::note`]).
    pub fn find(&mut self, label: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(label) {
            return Some(n);
        }
        let n = *self.by_value.get(&Number::parse(label)?)?;
        self.numbers.insert(label.to_owned(), n);
        self.read_by_value.push((label.to_owned(), n));
        Some(n)
    }

    /// The classes: their names in class order, and the class of each
    /// label number. Refuses a single class, which leaves nothing to learn.
    pub fn classes(&self) -> Result<Classes> {
        let mut groups = self.groups();
        match groups.as_slice() {
            [] => bail!("no labelled rows"),
            [only] => bail!(
                "every training row has the label '{}'{}; a classifier needs at least two classes",
                only.name,
                match only.numbers.len() {
                    1 => String::new(),
                    _ => format!(" (written {})", and_list(&only.spellings(self), 5)),
                }
            ),
            _ => {}
        }
        let integers: Option<Vec<i64>> = groups.iter().map(|g| g.name.parse().ok()).collect();
        match integers {
            Some(_) => groups.sort_by_key(|g| g.name.parse::<i64>().unwrap_or_default()),
            None => groups.sort_by(|a, b| a.name.cmp(&b.name)),
        }
        let mut class_of = vec![0u8; self.spellings.len()];
        for (class, group) in groups.iter().enumerate() {
            for &n in &group.numbers {
                class_of[n as usize] = class as u8;
            }
        }
        Ok(Classes {
            merged: groups
                .iter()
                .filter(|g| g.numbers.len() > 1)
                .map(|g| (g.name.clone(), g.spellings(self)))
                .collect(),
            names: groups.into_iter().map(|g| g.name).collect(),
            class_of,
        })
    }

    /// The label numbers of each class, in the order they first appeared:
    /// one spelling each, unless every spelling is a number and two are
    /// the same number.
    fn groups(&self) -> Vec<Group> {
        let values = match &self.values {
            Some(values) if self.by_value.len() < values.len() => values,
            _ => {
                return (0..self.spellings.len() as u32)
                    .map(|n| Group {
                        name: self.spellings[n as usize].clone(),
                        numbers: vec![n],
                    })
                    .collect()
            }
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of_first: HashMap<u32, usize> = HashMap::new();
        for (n, value) in values.iter().enumerate() {
            let first = self.by_value[value];
            let at = *group_of_first.entry(first).or_insert_with(|| {
                groups.push(Group {
                    name: String::new(),
                    numbers: Vec::new(),
                });
                groups.len() - 1
            });
            groups[at].numbers.push(n as u32);
        }
        for group in &mut groups {
            let value = &values[group.numbers[0] as usize];
            let shortest = group
                .numbers
                .iter()
                .map(|&n| &self.spellings[n as usize])
                .min_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)))
                .cloned()
                .unwrap_or_default();
            group.name = value.integer_form().unwrap_or(shortest);
        }
        groups
    }

    /// One line on how labels were read, when some were read as another
    /// of the same number: e.g. `labels 1 and 1.0 read as the same class
    /// 1`.
    pub fn note(&self, classes: &Classes) -> Option<String> {
        let mut parts: Vec<String> = classes
            .merged
            .iter()
            .map(|(name, spellings)| {
                format!(
                    "labels {} read as the same class {name}",
                    and_list(spellings, 5)
                )
            })
            .collect();
        let mut test_spellings: Vec<(&str, Vec<String>)> = Vec::new();
        for (spelling, n) in &self.read_by_value {
            let name = classes.names[classes.class_of[*n as usize] as usize].as_str();
            match test_spellings.iter_mut().find(|(class, _)| *class == name) {
                Some((_, spellings)) => spellings.push(spelling.clone()),
                None => test_spellings.push((name, vec![spelling.clone()])),
            }
        }
        parts.extend(test_spellings.iter().map(|(name, spellings)| {
            let noun = if spellings.len() == 1 {
                "label"
            } else {
                "labels"
            };
            format!(
                "test {noun} {} read as the class {name}",
                and_list(spellings, 5)
            )
        }));
        (!parts.is_empty()).then(|| and_more(parts, 4).join("; "))
    }
}

/// Whether `names` are classes of a reading from before labels that are
/// the same number were one class: every one a number, and two the same
/// (a cache of those is stale).
pub(super) fn same_number_twice(names: &[String]) -> bool {
    let values: Option<Vec<Number>> = names.iter().map(|n| Number::parse(n)).collect();
    values.is_some_and(|values| {
        let distinct: std::collections::HashSet<&Number> = values.iter().collect();
        distinct.len() < values.len()
    })
}

/// The label numbers of one class.
struct Group {
    name: String,
    numbers: Vec<u32>,
}

impl Group {
    fn spellings(&self, labels: &LabelSet) -> Vec<String> {
        let spellings = self.numbers.iter();
        spellings
            .map(|&n| labels.spellings[n as usize].clone())
            .collect()
    }
}

/// `a`, `a and b`, `a, b and c`; past `most` items, `a, b and 3 more`.
fn and_list(items: &[String], most: usize) -> String {
    match and_more(items.to_vec(), most).as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The first `most` items, then `N more` in place of the rest.
fn and_more(mut items: Vec<String>, most: usize) -> Vec<String> {
    if items.len() > most + 1 {
        let rest = items.len() - most;
        items.truncate(most);
        items.push(format!("{rest} more"));
    }
    items
}

/// The classes of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Classes {
    /// Class names, by class.
    pub names: Vec<String>,
    /// The class of each label number of the [`LabelSet`].
    pub class_of: Vec<u8>,
    /// Classes of several spellings (the same number), in class order:
    /// the name and the spellings.
    pub merged: Vec<(String, Vec<String>)>,
}

/// A label read as a decimal number, exactly (no rounding through a
/// float, which would make `9007199254740993` the same as
/// `9007199254740992`): equal numbers have equal values however they are
/// written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Number {
    negative: bool,
    /// Significant digits, without leading or trailing zeros; empty for 0.
    digits: String,
    /// The power of ten of the last digit.
    exponent: i64,
}

impl Number {
    /// `[+-]digits[.digits][e[+-]digits]`, with digits on at least one
    /// side of the point; `None` for anything else (`inf`, `0x1`, `1,0`).
    fn parse(label: &str) -> Option<Number> {
        let (negative, unsigned) = match label.as_bytes().first()? {
            b'-' => (true, &label[1..]),
            b'+' => (false, &label[1..]),
            _ => (false, label),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = whole.bytes().chain(fraction.bytes());
        if whole.len() + fraction.len() == 0 || !digits.clone().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let all: String = digits.map(char::from).collect();
        let significant = all.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        if trimmed.is_empty() {
            return Some(Number {
                negative: false,
                digits: String::new(),
                exponent: 0,
            });
        }
        let trailing_zeros = (significant.len() - trimmed.len()) as i64;
        Some(Number {
            negative,
            digits: trimmed.to_owned(),
            exponent: exponent
                .checked_sub(fraction.len() as i64)?
                .checked_add(trailing_zeros)?,
        })
    }

    /// `-12`, `0`: the number as an integer that an `i64` holds, if it is
    /// one.
    fn integer_form(&self) -> Option<String> {
        if self.digits.is_empty() {
            return Some("0".to_owned());
        }
        let zeros = usize::try_from(self.exponent).ok()?;
        if self.digits.len() + zeros > 18 {
            return None;
        }
        let sign = if self.negative { "-" } else { "" };
        Some(format!("{sign}{}{}", self.digits, "0".repeat(zeros)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes_of(labels: &[&str]) -> Result<Classes> {
        let mut set = LabelSet::default();
        for l in labels {
            set.add(l).unwrap();
        }
        set.classes()
    }

    #[test]
    fn integer_labels_are_ordered_as_numbers() {
        let c = classes_of(&["10", "2", "-1", "2"]).unwrap();
        assert_eq!(c.names, ["-1", "2", "10"]);
        assert_eq!(c.class_of, [2, 1, 0]);
    }

    #[test]
    fn string_labels_are_ordered_by_code_points() {
        let c = classes_of(&["pos", "neg", "Neutral", "10"]).unwrap();
        assert_eq!(c.names, ["10", "Neutral", "neg", "pos"]);
        assert_eq!(c.class_of, [3, 2, 1, 0]);
    }

    #[test]
    fn one_class_or_none_is_refused() {
        let err = classes_of(&["spam", "spam"]).unwrap_err().to_string();
        assert!(
            err.contains("'spam'") && err.contains("two classes"),
            "{err}"
        );
        assert!(classes_of(&[]).is_err());
        let err = classes_of(&["1", "1.0"]).unwrap_err().to_string();
        assert!(err.contains("'1' (written 1 and 1.0)"), "{err}");
    }

    #[test]
    fn a_label_past_the_last_class_is_not_numbered() {
        let mut set = LabelSet::default();
        for i in 0..MAX_CLASSES {
            assert_eq!(set.add(&i.to_string()), Some(i as u32));
        }
        assert_eq!(set.add("0"), Some(0));
        assert_eq!(set.add("one too many"), None);
        assert_eq!(set.find("one too many"), None);
    }

    #[test]
    fn labels_that_are_the_same_number_are_one_class() {
        let mut set = LabelSet::default();
        for l in ["1", "0.0", "1.0", "0", "+1", "1e0", "-0", "10E-1"] {
            set.add(l).unwrap();
        }
        let c = set.classes().unwrap();
        assert_eq!(c.names, ["0", "1"]);
        assert_eq!(c.class_of, [1, 0, 1, 0, 1, 1, 0, 1]);
        assert_eq!(
            set.note(&c).unwrap(),
            "labels 0.0, 0 and -0 read as the same class 0; \
             labels 1, 1.0, +1, 1e0 and 10E-1 read as the same class 1"
        );
        let c = classes_of(&["0.50", "0.5", "2", "2.00", "10"]).unwrap();
        assert_eq!(c.names, ["0.5", "10", "2"], "code points, as before");
        assert_eq!(c.class_of, [0, 0, 2, 2, 1]);
    }

    #[test]
    fn labels_are_merged_only_when_every_one_is_a_number() {
        let c = classes_of(&["1", "1.0", "pos"]).unwrap();
        assert_eq!(c.names, ["1", "1.0", "pos"]);
        assert!(c.merged.is_empty());
        let c = classes_of(&["1.0", "2.0", "10.0"]).unwrap();
        assert_eq!(c.names, ["1.0", "10.0", "2.0"], "no merge, names kept");
        let c = classes_of(&["Pos", "pos", "inf", "Infinity", "NaN", "nan"]).unwrap();
        assert_eq!(c.names.len(), 6, "strings stay as they are");
    }

    #[test]
    fn a_test_label_finds_the_training_class_of_its_number() {
        let mut set = LabelSet::default();
        for l in ["1", "0", "2"] {
            set.add(l).unwrap();
        }
        let c = set.classes().unwrap();
        assert_eq!(set.find("1.0"), set.find("1"));
        assert_eq!(set.find("00"), Some(1));
        assert_eq!(set.find("1.5"), None);
        assert_eq!(set.find("one"), None);
        assert_eq!(
            set.note(&c).unwrap(),
            "test label 1.0 read as the class 1; test label 00 read as the class 0"
        );
        let mut strings = LabelSet::default();
        for l in ["1", "pos"] {
            strings.add(l).unwrap();
        }
        assert_eq!(
            strings.find("1.0"),
            None,
            "strings are compared as they are"
        );
    }

    #[test]
    fn numbers_are_compared_exactly() {
        let n = |s: &str| Number::parse(s);
        assert_eq!(n("9007199254740993"), n("9007199254740993.0"));
        assert_ne!(n("9007199254740993"), n("9007199254740992"));
        assert_eq!(n("1.5e3"), n("1500"));
        assert_eq!(n(".5"), n("0.5"));
        assert_eq!(n("5."), n("5"));
        for not_a_number in ["", ".", "-", "1e", "e1", "0x10", "1,0", "1 0", "inf", "1e+"] {
            assert_eq!(n(not_a_number), None, "{not_a_number:?}");
        }
        assert_eq!(n("1e99999999999999999999"), None);
        assert_eq!(n("-12").unwrap().integer_form().unwrap(), "-12");
        assert_eq!(n("1e30").unwrap().integer_form(), None);
        assert_eq!(n("0.5").unwrap().integer_form(), None);
    }
}
