//! Which weight elements share a scale. DeepSpeed's `quantize_groups = G` splits the row-major
//! `[rows, cols]` tensor into G contiguous chunks (blocks of whole rows when G divides rows);
//! Ember's `group_size = g` splits every row into chunks of g input elements (the last one may be
//! shorter); embeddings use one group per row.

use std::ops::Range;

/// How scale groups are laid out over a `[rows, cols]` weight (the plan's, the quantizer's and
/// the artifact's: one type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum GroupLayout {
    /// DeepSpeed: `G` contiguous chunks of the row-major tensor. `G` must divide `rows · cols`.
    Chunks(usize),
    /// Ember: every row split into chunks of `group_size` elements.
    RowGroups(usize),
    /// One group per row.
    PerRow,
}

impl GroupLayout {
    /// Number of groups on a `[rows, cols]` weight.
    pub fn groups(self, rows: usize, cols: usize) -> usize {
        match self {
            GroupLayout::Chunks(g) => g,
            GroupLayout::RowGroups(g) => rows * cols.div_ceil(g.max(1)),
            GroupLayout::PerRow => rows,
        }
    }

    /// Whether the layout fits the shape (chunks must divide the element count).
    pub fn fits(self, rows: usize, cols: usize) -> bool {
        match self {
            GroupLayout::Chunks(g) => g > 0 && (rows * cols).is_multiple_of(g),
            GroupLayout::RowGroups(g) => g > 0,
            GroupLayout::PerRow => true,
        }
    }
}

/// The flat element range of every group, in group order (every layout's groups are contiguous
/// in the row-major tensor).
pub fn group_ranges(rows: usize, cols: usize, layout: GroupLayout) -> Vec<Range<usize>> {
    match layout {
        GroupLayout::Chunks(g) => {
            let len = (rows * cols) / g.max(1);
            (0..g).map(|k| k * len..(k + 1) * len).collect()
        }
        GroupLayout::PerRow => (0..rows).map(|r| r * cols..(r + 1) * cols).collect(),
        GroupLayout::RowGroups(g) => {
            let g = g.max(1);
            let mut out = Vec::with_capacity(rows * cols.div_ceil(g));
            for r in 0..rows {
                let mut c = 0;
                while c < cols {
                    let end = (c + g).min(cols);
                    out.push(r * cols + c..r * cols + end);
                    c = end;
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepspeed_chunks_are_blocks_of_whole_rows() {
        // BERT 768×768 with 48 groups → 16 rows per group (compat-notes §2.5).
        let g = group_ranges(768, 768, GroupLayout::Chunks(48));
        assert_eq!(g.len(), 48);
        assert_eq!(g[1], 16 * 768..32 * 768);
    }

    #[test]
    fn row_groups_are_ragged_at_the_end_of_a_row() {
        let g = group_ranges(2, 5, GroupLayout::RowGroups(2));
        assert_eq!(g, vec![0..2, 2..4, 4..5, 5..7, 7..9, 9..10]);
        assert_eq!(GroupLayout::RowGroups(2).groups(2, 5), 6);
    }
}
