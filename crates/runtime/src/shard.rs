//! Independent shards of a run over many inputs (`--shard K/N`): shard K of N takes the K-th of
//! N contiguous blocks of the sorted inputs, so concatenating the shards' rows in shard order
//! gives exactly the rows of one unsharded run, in the same order.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count`, 0-based (`--shard 0/4` … `--shard 3/4`; Slurm's
/// `$SLURM_ARRAY_TASK_ID` with `--array=0-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: usize,
    /// How many shards the run is split into.
    pub count: usize,
}

impl Shard {
    /// The whole run as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The block of `n` items this shard owns. Blocks differ in size by at most one and
    /// together cover `0..n` in order.
    pub fn range(&self, n: usize) -> Range<usize> {
        let start = self.index * n / self.count;
        let end = (self.index + 1) * n / self.count;
        start..end
    }

    /// The items this shard owns, in order.
    pub fn select<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.range(items.len())]
    }

    /// Is this the whole run?
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Check that `shards` (sorted by index, all of one count) are each shard of their run
    /// exactly once, as a merge needs; the error lists the missing ones and those present.
    pub fn check_complete(shards: &[Shard]) -> Result<(), String> {
        let Some(count) = shards.first().map(|s| s.count) else {
            return Err("cannot merge: no shards given".into());
        };
        let present: Vec<usize> = shards.iter().map(|s| s.index).collect();
        let missing: Vec<String> = (0..count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        if missing.is_empty() && present.len() == count {
            return Ok(());
        }
        Err(format!(
            "cannot merge: shards {} missing or given twice (have {})",
            if missing.is_empty() {
                "are".to_string()
            } else {
                missing.join(", ")
            },
            present
                .iter()
                .map(|k| format!("{k}/{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard `{s}`: expected K/N, e.g. 0/4"))?;
        let index: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("shard `{s}`: K is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("shard `{s}`: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard `{s}`: need 0 <= K < N (shards are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_in_order() {
        for n in [0usize, 1, 5, 7, 100] {
            for count in 1..=6 {
                let mut all = vec![];
                for index in 0..count {
                    let r = Shard { index, count }.range(n);
                    assert!(r.len() <= n / count + 1);
                    all.extend(r);
                }
                assert_eq!(all, (0..n).collect::<Vec<_>>());
            }
        }
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
