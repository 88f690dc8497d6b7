//! Labels as they come in a user's file (integers or strings) and the
//! classes they become: the training labels, sorted (numerically when every
//! one is an integer, else by code points, as `text_dataset_from_directory`
//! sorts its class folders), numbered 0, 1, ... in that order.
use std::collections::HashMap;

use anyhow::{bail, Result};

/// `y` holds a class as one byte.
pub const MAX_CLASSES: usize = 256;

/// The labels seen so far, numbered in the order they first appeared.
#[derive(Debug, Default)]
pub(super) struct LabelSet {
    numbers: HashMap<String, u32>,
    names: Vec<String>,
}

impl LabelSet {
    /// The number of a training label, new ones included. `None` once there
    /// would be more than [`MAX_CLASSES`].
    pub fn add(&mut self, label: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(label) {
            return Some(n);
        }
        if self.names.len() == MAX_CLASSES {
            return None;
        }
        let n = self.names.len() as u32;
        self.numbers.insert(label.to_owned(), n);
        self.names.push(label.to_owned());
        Some(n)
    }

    /// The number of a label already seen in training.
    pub fn find(&self, label: &str) -> Option<u32> {
        self.numbers.get(label).copied()
    }

    /// The classes: their names in class order, and the class of each
    /// label number. Refuses a single class, which leaves nothing to learn.
    pub fn classes(&self) -> Result<Classes> {
        match self.names.as_slice() {
            [] => bail!("no labelled rows"),
            [only] => bail!(
                "every training row has the label '{only}'; a classifier needs at least two classes"
            ),
            _ => {}
        }
        let mut sorted: Vec<&String> = self.names.iter().collect();
        let integers: Option<Vec<i64>> = sorted.iter().map(|n| n.parse().ok()).collect();
        match integers {
            Some(_) => sorted.sort_by_key(|n| n.parse::<i64>().unwrap_or_default()),
            None => sorted.sort(),
        }
        let mut class_of = vec![0u8; self.names.len()];
        for (class, name) in sorted.iter().enumerate() {
            class_of[self.numbers[*name] as usize] = class as u8;
        }
        Ok(Classes {
            names: sorted.into_iter().cloned().collect(),
            class_of,
        })
    }
}

/// The classes of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Classes {
    /// Class names, by class.
    pub names: Vec<String>,
    /// The class of each label number of the [`LabelSet`].
    pub class_of: Vec<u8>,
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
}
