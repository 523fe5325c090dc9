//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): the log cut into tiles of height 8.
//!
//! A tile at level `L`, index `N` and width `W` holds the `W` hashes of tree level `8·L` at
//! positions `N·256 .. N·256+W`. An entry bundle holds the same positions' entries, each prefixed
//! by its length as a big-endian `u16`. A full tile (`W = 256`) never changes once the tree has
//! grown past it, which is what lets a CDN or a static file host carry a log's read load.
//!
//! This module only maps coordinates, paths and bytes; [`TileHashReader`] reads a tree's stored
//! hashes out of tiles that a caller fetches, so a verifier can prove consistency from tiles alone.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::hash::{Hash, node_hash};
use crate::tree::{HashReader, stored_hash_index};

/// Tree levels per tile.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile, and entries in a full bundle.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A tile's coordinates. `level` is the tile level (tree level `8·level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    // INVARIANT: level <= 7 (8·level < 64); 1 <= width <= 256.
    level: u8,
    index: u64,
    width: u16,
}

/// Why a tile path or request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` in canonical form.
    #[error("malformed tile path: {0}")]
    BadPath(&'static str),
    /// The tile reaches past the tree.
    #[error("tile is beyond the tree")]
    BeyondTree,
    /// Tile bytes of the wrong length or an entry bundle that does not parse.
    #[error("malformed tile data: {0}")]
    BadData(&'static str),
}

impl Tile {
    /// A tile; `width` must be 1 to 256 and `level` at most 7.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Tile, TileError> {
        if level > 7 {
            return Err(TileError::BadPath("level must be 0 to 7"));
        }
        if width == 0 || u64::from(width) > TILE_WIDTH {
            return Err(TileError::BadPath("width must be 1 to 255"));
        }
        Ok(Tile {
            level,
            index,
            width,
        })
    }

    /// The tile level.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The tile's index within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many hashes (or entries) it holds.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether it is full, and so immutable.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The widest tile at these coordinates that a tree of `size` leaves has, if any.
    pub fn for_tree(level: u8, index: u64, size: u64) -> Option<Tile> {
        let row = size >> (TILE_HEIGHT * u32::from(level));
        let start = index.checked_mul(TILE_WIDTH)?;
        let width = row.checked_sub(start)?.min(TILE_WIDTH);
        (width > 0 && level <= 7).then_some(Tile {
            level,
            index,
            width: width as u16,
        })
    }

    /// Whether a tree of `size` leaves holds every hash of this tile.
    pub fn within(&self, size: u64) -> bool {
        Tile::for_tree(self.level, self.index, size).is_some_and(|t| t.width >= self.width)
    }

    /// The stored-hash positions of the tile's hashes, left to right.
    pub fn stored_indexes(&self) -> impl Iterator<Item = u64> + '_ {
        let level = TILE_HEIGHT * u32::from(self.level);
        let start = self.index * TILE_WIDTH;
        (0..u64::from(self.width)).map(move |i| stored_hash_index(level, start + i))
    }

    /// The leaf positions an entry bundle with these coordinates covers (level 0 only).
    pub fn entry_range(&self) -> std::ops::Range<u64> {
        let start = self.index * TILE_WIDTH;
        start..start + u64::from(self.width)
    }

    /// The hash tile's path, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// The entry bundle's path, `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    fn suffix(&self) -> String {
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let mut out = String::new();
        for (i, g) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                out.push_str(&format!("x{g:03}/"));
            } else {
                out.push_str(&format!("{g:03}"));
            }
        }
        if !self.is_full() {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }
}

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// A tile of hashes.
    Hashes(Tile),
    /// An entry bundle (its level is 0).
    Entries(Tile),
}

/// Parses the part of a path after `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
/// Only the canonical encoding is accepted, so every tile has exactly one path (and one cache key).
pub fn parse_tile_path(rest: &str) -> Result<TilePath, TileError> {
    let (kind, rest) = rest
        .split_once('/')
        .ok_or(TileError::BadPath("missing index"))?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let width = parse_decimal(w).ok_or(TileError::BadPath("bad partial width"))?;
            if !(1..TILE_WIDTH).contains(&width) {
                return Err(TileError::BadPath("partial width must be 1 to 255"));
            }
            (i, width as u16)
        }
        None => (rest, TILE_WIDTH as u16),
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    let mut index: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *g
        } else {
            g.strip_prefix('x')
                .ok_or(TileError::BadPath("inner index groups start with x"))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::BadPath("index groups are three digits"));
        }
        if i == 0 && !last && digits == "000" {
            return Err(TileError::BadPath("index has a leading zero group"));
        }
        let value: u64 = digits.parse().expect("three digits");
        index = index
            .checked_mul(1000)
            .and_then(|x| x.checked_add(value))
            .ok_or(TileError::BadPath("index too large"))?;
    }
    if kind == "entries" {
        return Ok(TilePath::Entries(Tile::new(0, index, width)?));
    }
    let level = parse_decimal(kind).ok_or(TileError::BadPath("bad level"))?;
    let level = u8::try_from(level).map_err(|_| TileError::BadPath("level must be 0 to 7"))?;
    Ok(TilePath::Hashes(Tile::new(level, index, width)?))
}

/// A decimal with no sign and no leading zeros.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// Encodes entries as a bundle: each is a big-endian `u16` length and the bytes.
pub fn encode_entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).expect("entries are at most 65535 bytes");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Splits an entry bundle into its entries.
pub fn decode_entry_bundle(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err(TileError::BadData("truncated entry length"));
        }
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let rest = &bytes[2..];
        if rest.len() < len {
            return Err(TileError::BadData("truncated entry"));
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Ok(out)
}

/// The inverse of [`stored_hash_index`]: the `(level, n)` of a stored position.
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // stored_hash_index(0, n) < 2n, so the last leaf stored at or before `index` is at least index/2.
    let mut n = index / 2;
    let mut at = stored_hash_index(0, n);
    loop {
        // Leaf n+1 is stored after leaf n and the 1 + trailing_zeros(n+1) - 1 subtrees n completes.
        let next = at + 1 + u64::from((n + 1).trailing_zeros());
        if next > index {
            break;
        }
        n += 1;
        at = next;
    }
    let level = (index - at) as u32;
    (level, n >> level)
}

/// Reads a tree's stored hashes out of tiles, for a tree of `size` leaves.
///
/// Tiles come from `fetch`, are fetched once each and are not trusted: a proof computed from them
/// proves something only once it verifies against a signed root.
pub struct TileHashReader<F> {
    size: u64,
    fetch: F,
    tiles: RefCell<HashMap<(u8, u64), Vec<Hash>>>,
}

impl<F, E> TileHashReader<F>
where
    F: Fn(Tile) -> Result<Vec<u8>, E>,
    E: From<TileError>,
{
    /// A reader for the tree of `size` leaves.
    pub fn new(size: u64, fetch: F) -> TileHashReader<F> {
        TileHashReader {
            size,
            fetch,
            tiles: RefCell::new(HashMap::new()),
        }
    }

    fn tile_hashes(&self, level: u8, index: u64) -> Result<Vec<Hash>, E> {
        if let Some(t) = self.tiles.borrow().get(&(level, index)) {
            return Ok(t.clone());
        }
        let tile = Tile::for_tree(level, index, self.size).ok_or(TileError::BeyondTree)?;
        let bytes = (self.fetch)(tile)?;
        if bytes.len() != usize::from(tile.width) * 32 {
            return Err(TileError::BadData("tile length is not its width times 32").into());
        }
        let hashes: Vec<Hash> = bytes
            .chunks_exact(32)
            .map(|c| Hash(c.try_into().expect("32-byte chunk")))
            .collect();
        self.tiles
            .borrow_mut()
            .insert((level, index), hashes.clone());
        Ok(hashes)
    }

    /// The hash of subtree `(level, n)`, folded from its tile's bottom row.
    fn subtree(&self, level: u32, n: u64) -> Result<Hash, E> {
        let tile_level = level / TILE_HEIGHT;
        let rise = level % TILE_HEIGHT;
        let start = n << rise;
        let hashes = self.tile_hashes(tile_level as u8, start / TILE_WIDTH)?;
        let offset = (start % TILE_WIDTH) as usize;
        let span = 1usize << rise;
        let row = hashes
            .get(offset..offset + span)
            .ok_or(TileError::BeyondTree)?;
        let mut row = row.to_vec();
        while row.len() > 1 {
            row = row
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
        }
        Ok(row[0])
    }
}

impl<F, E> HashReader for TileHashReader<F>
where
    F: Fn(Tile) -> Result<Vec<u8>, E>,
    E: From<TileError>,
{
    type Error = E;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, E> {
        indexes
            .iter()
            .map(|&i| {
                let (level, n) = split_stored_hash_index(i);
                self.subtree(level, n)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{
        Frontier, MemoryHashes, consistency_proof, inclusion_proof, tree_hash, verify_consistency,
    };

    #[test]
    fn paths_follow_the_spec_examples() {
        let t = Tile::new(4, 1_234_067, 8).unwrap();
        assert_eq!(t.path(), "tile/4/x001/x234/067.p/8");
        assert_eq!(t.entries_path(), "tile/entries/x001/x234/067.p/8");
        assert_eq!(Tile::new(0, 0, 256).unwrap().path(), "tile/0/000");
        assert_eq!(Tile::new(1, 1000, 256).unwrap().path(), "tile/1/x001/000");
        for tile in [
            t,
            Tile::new(0, 999, 256).unwrap(),
            Tile::new(2, 7, 1).unwrap(),
        ] {
            let rest = tile.path().strip_prefix("tile/").unwrap().to_owned();
            assert_eq!(parse_tile_path(&rest), Ok(TilePath::Hashes(tile)));
            let rest = tile
                .entries_path()
                .strip_prefix("tile/")
                .unwrap()
                .to_owned();
            assert_eq!(
                parse_tile_path(&rest),
                Ok(TilePath::Entries(Tile { level: 0, ..tile }))
            );
        }
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for bad in [
            "0/1",
            "0/0001",
            "0/x000/001",
            "0/001/x002",
            "0/000.p/256",
            "0/000.p/0",
            "0/000.p/07",
            "8/000",
            "01/000",
            "-1/000",
            "0/x1000/000",
            "entries/",
            "0",
        ] {
            assert!(parse_tile_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_for_a_tree() {
        assert_eq!(Tile::for_tree(0, 0, 0), None);
        assert_eq!(Tile::for_tree(0, 0, 5).unwrap().width(), 5);
        assert_eq!(Tile::for_tree(0, 1, 300).unwrap().width(), 44);
        assert!(Tile::for_tree(0, 0, 300).unwrap().is_full());
        assert_eq!(Tile::for_tree(1, 0, 300).unwrap().width(), 1);
        assert_eq!(Tile::for_tree(1, 0, 255), None);
        assert!(Tile::new(0, 1, 40).unwrap().within(300));
        assert!(!Tile::new(0, 1, 45).unwrap().within(300));
    }

    #[test]
    fn split_inverts_stored_hash_index() {
        for level in 0..12 {
            for n in 0..600 {
                let i = stored_hash_index(level, n);
                assert_eq!(split_stored_hash_index(i), (level, n));
            }
        }
    }

    #[test]
    fn entry_bundles_round_trip_and_refuse_truncation() {
        let entries: Vec<Vec<u8>> = vec![vec![1; 32], vec![], vec![2; 3]];
        let bytes = encode_entry_bundle(entries.iter().map(Vec::as_slice));
        assert_eq!(decode_entry_bundle(&bytes).unwrap(), entries);
        assert!(decode_entry_bundle(&bytes[..bytes.len() - 1]).is_err());
    }

    /// Tiles cut from a stored tree give back the same roots and proofs.
    #[test]
    fn a_tile_reader_reproduces_roots_and_proofs() {
        let mut f = Frontier::default();
        let mut m = MemoryHashes::default();
        let size: u64 = 256 * 256 + 3 * 256 + 17;
        for i in 0..size {
            m.extend(&f.append(&i.to_be_bytes()).1);
        }
        let fetch = |t: Tile| -> Result<Vec<u8>, TileError> {
            Ok(t.stored_indexes()
                .flat_map(|i| m.0[i as usize].0)
                .collect::<Vec<u8>>())
        };
        let tiles = TileHashReader::new(size, fetch);
        assert_eq!(tree_hash(size, &tiles).unwrap(), f.root());
        for old in [1, 255, 256, 257, 65_536, size - 1] {
            let proof = consistency_proof(old, size, &tiles).unwrap();
            assert_eq!(proof, consistency_proof(old, size, &m).unwrap());
            let old_root = tree_hash(old, &m).unwrap();
            verify_consistency(old, size, &proof, &old_root.0, &f.root().0).unwrap();
        }
        for index in [0, 300, 65_535, size - 1] {
            assert_eq!(
                inclusion_proof(index, size, &tiles).unwrap(),
                inclusion_proof(index, size, &m).unwrap()
            );
        }
    }
}
