//! `candor verify`: an offline verifier for any C2SP log (tlog-tiles, signed-note checkpoints,
//! tlog-cosignature witnesses, tlog-proof receipts), Candor's or anyone else's.
//!
//! Nothing fetched is trusted. Tiles only ever feed proofs, and a proof counts only once it
//! verifies against a root signed by the log's key. The state file holds the last checkpoint that
//! passed, so a later run proves the log only grew since (a rollback or a fork fails).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::directory::{Head, NodeRef, from_checkpoint_text, verify_membership};
use candor_log::tile::decode_entry_bundle;
use candor_log::{
    Checkpoint, Frontier, NoteVerifier, Receipt, Tile, TileHashReader, WitnessVerifier, commitment,
    consistency_proof, tree_hash, verify_consistency, verify_cosignatures,
};

/// What to check, as given on the command line.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The log's tiles: a directory laid out as tlog-tiles, or its URL prefix
    /// (for Candor, `http://HOST/log`).
    #[arg(long, required_unless_present = "history")]
    pub tiles: Option<String>,
    /// A customer's saved history (the JSON of `GET /v1/subjects/{id}/history`): check every
    /// event and that they are all the log attributes to the customer. Repeat it for each page,
    /// in order (each fetched with `?after=` the previous page's `next`).
    /// With `--state`, also check that the events shown last time are still the first ones.
    #[arg(long, conflicts_with_all = ["tiles", "receipt", "all_entries"])]
    pub history: Vec<PathBuf>,
    /// The log's public key (C2SP vkey).
    #[arg(long)]
    pub key: String,
    /// A witness's public key (tlog-cosignature vkey); repeat for several.
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all given).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Use this checkpoint file instead of the one the tiles source serves.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A receipt (c2sp.org/tlog-proof@v1) to check.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    /// The receipt's exact entry bytes.
    #[arg(long, conflicts_with_all = ["event", "nonce"])]
    pub entry: Option<PathBuf>,
    /// A Candor event's canonical bytes, to check that it opens the receipt's commitment.
    #[arg(long, requires = "nonce")]
    pub event: Option<PathBuf>,
    /// The event's commitment nonce, base64.
    #[arg(long, requires = "event")]
    pub nonce: Option<String>,
    /// Keeps the last verified checkpoint, to prove the log only grew since (with
    /// `--history`: the customer's last verified history).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Also fetch every entry bundle and rebuild the whole tree from them.
    #[arg(long)]
    pub all_entries: bool,
}

enum Source {
    Dir(PathBuf),
    Url(String, reqwest::blocking::Client),
}

impl Source {
    fn new(spec: &str) -> anyhow::Result<Source> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let client = reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?;
            Ok(Source::Url(spec.trim_end_matches('/').to_owned(), client))
        } else {
            Ok(Source::Dir(PathBuf::from(spec)))
        }
    }

    fn get(&self, rel: &str) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::Dir(dir) => {
                let path = dir.join(rel);
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
            }
            Source::Url(base, client) => {
                let url = format!("{base}/{rel}");
                let resp = client
                    .get(&url)
                    .send()
                    .with_context(|| format!("fetching {url}"))?;
                if !resp.status().is_success() {
                    bail!("fetching {url}: HTTP {}", resp.status());
                }
                Ok(resp.bytes()?.to_vec())
            }
        }
    }
}

/// The keys a checkpoint must be signed with, and how many witnesses must agree.
struct Trust {
    log_key: NoteVerifier,
    witnesses: Vec<WitnessVerifier>,
    quorum: usize,
}

/// Prints one passed step.
fn ok(step: &str, detail: impl std::fmt::Display) {
    println!("ok    {step:<13} {detail}");
}

/// Runs every requested check, printing a line per step; the first failure is the error.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let log_key = NoteVerifier::parse(&args.key).map_err(|e| anyhow!("--key: {e}"))?;
    let witnesses = args
        .witnesses
        .iter()
        .map(|w| WitnessVerifier::parse(w).map_err(|e| anyhow!("--witness {w}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let quorum = args.quorum.unwrap_or(witnesses.len());
    let trust = Trust {
        log_key,
        witnesses,
        quorum,
    };
    if trust.quorum > trust.witnesses.len() {
        bail!(
            "--quorum {quorum} is more than the {} witnesses given",
            trust.witnesses.len()
        );
    }
    if !args.history.is_empty() {
        return check_history(&args.history, &trust, args.state.as_deref());
    }
    let tiles = args
        .tiles
        .as_deref()
        .ok_or_else(|| anyhow!("give --tiles, or --history"))?;
    let source = Source::new(tiles)?;

    let note = match &args.checkpoint {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => String::from_utf8(source.get("checkpoint")?).context("checkpoint is not UTF-8")?,
    };
    let cp = open_checked(&note, &trust, "checkpoint")?;

    let tiles = TileHashReader::new(cp.size, |t: Tile| source.get(&t.path()));
    let root = tree_hash(cp.size, &tiles).context("tiles")?;
    if !root.ct_eq(&cp.root) {
        bail!("tiles: the tree the tiles describe has a different root than the checkpoint");
    }
    ok(
        "tiles",
        "the right edge of the tiles gives the checkpoint's root",
    );

    if args.all_entries {
        let mut frontier = Frontier::default();
        for n in 0..cp.size.div_ceil(256) {
            let tile = Tile::for_tree(0, n, cp.size).expect("below the size");
            let bundle = decode_entry_bundle(&source.get(&tile.entries_path())?)
                .with_context(|| format!("entry bundle {n}"))?;
            if bundle.len() != usize::from(tile.width()) {
                bail!(
                    "entries: bundle {n} holds {} entries, not {}",
                    bundle.len(),
                    tile.width()
                );
            }
            for entry in &bundle {
                frontier.append(entry);
            }
        }
        if !frontier.root().ct_eq(&cp.root) {
            bail!("entries: the entry bundles do not hash to the checkpoint's root");
        }
        ok(
            "entries",
            format!("all {} entries rebuild the checkpoint's tree", cp.size),
        );
    }

    if let Some(path) = &args.receipt {
        check_receipt(args, path, &source, &cp, &trust)?;
    }

    if let Some(state) = &args.state {
        check_state(state, &note, &cp, &trust.log_key, |old| {
            consistency_proof(old, cp.size, &tiles)
        })?;
    }
    Ok(())
}

fn open_checked(note: &str, trust: &Trust, step: &str) -> anyhow::Result<Checkpoint> {
    let Trust {
        log_key,
        witnesses,
        quorum,
    } = trust;
    let quorum = *quorum;
    let cp = Checkpoint::open(note, log_key).map_err(|e| anyhow!("{step}: {e}"))?;
    ok(step, format!("signed by {}, size {}", cp.origin, cp.size));
    if !witnesses.is_empty() {
        let cosigned =
            verify_cosignatures(note, witnesses).map_err(|e| anyhow!("cosignatures: {e}"))?;
        if cosigned.len() < quorum {
            bail!(
                "cosignatures: {} of the {quorum} required ({})",
                cosigned.len(),
                names(&cosigned)
            );
        }
        ok(
            "cosignatures",
            format!(
                "{} of {quorum} required: {}",
                cosigned.len(),
                names(&cosigned)
            ),
        );
    }
    Ok(cp)
}

fn names(cosigned: &[candor_log::Cosigned]) -> String {
    let names: Vec<&str> = cosigned.iter().map(|c| c.witness.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn check_receipt(
    args: &VerifyArgs,
    path: &Path,
    source: &Source,
    cp: &Checkpoint,
    trust: &Trust,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let receipt = Receipt::parse(&text).map_err(|e| anyhow!("receipt: {e}"))?;
    let receipt_cp = open_checked(&receipt.checkpoint, trust, "receipt")?;
    if receipt.index >= receipt_cp.size {
        bail!("receipt: index {} is outside its checkpoint", receipt.index);
    }
    // The entry the log holds at that index, from its entry bundle.
    let tile = Tile::for_tree(0, receipt.index / 256, receipt_cp.size).expect("index below size");
    let bundle = decode_entry_bundle(&source.get(&tile.entries_path())?)?;
    let logged = bundle
        .get((receipt.index % 256) as usize)
        .ok_or_else(|| anyhow!("entries: bundle lacks entry {}", receipt.index))?
        .clone();
    let entry = match (&args.entry, &args.event, &args.nonce) {
        (Some(file), None, None) => std::fs::read(file)?,
        (None, Some(event), Some(nonce)) => {
            let event = std::fs::read(event)?;
            let nonce: [u8; 32] = B64
                .decode(nonce.trim())
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| anyhow!("--nonce is not base64 of 32 bytes"))?;
            let c = commitment::commit(&nonce, &event);
            ok(
                "commitment",
                "the event and nonce open to the commitment below",
            );
            c.to_vec()
        }
        (None, None, None) => logged.clone(),
        _ => bail!("give --entry, or --event with --nonce, or neither"),
    };
    if entry != logged {
        bail!(
            "entries: the log's entry {} is not the one given",
            receipt.index
        );
    }
    receipt
        .verify(&entry, &trust.log_key)
        .map_err(|e| anyhow!("inclusion: {e}"))?;
    ok(
        "inclusion",
        format!(
            "entry {} is in the receipt's tree of {}",
            receipt.index, receipt_cp.size
        ),
    );
    // The receipt's checkpoint must be a prefix of the one being served now.
    if receipt_cp.size > cp.size {
        bail!(
            "receipt: its checkpoint (size {}) is ahead of the log's ({})",
            receipt_cp.size,
            cp.size
        );
    }
    let tiles = TileHashReader::new(cp.size, |t: Tile| source.get(&t.path()));
    let proof = consistency_proof(receipt_cp.size, cp.size, &tiles)?;
    verify_consistency(
        receipt_cp.size,
        cp.size,
        &proof,
        &receipt_cp.root.0,
        &cp.root.0,
    )
    .map_err(|e| anyhow!("receipt: its checkpoint is not a prefix of the log's: {e}"))?;
    ok(
        "receipt",
        format!(
            "its tree of {} is a prefix of the log's {}",
            receipt_cp.size, cp.size
        ),
    );
    Ok(())
}

fn check_state(
    state: &Path,
    note: &str,
    cp: &Checkpoint,
    log_key: &NoteVerifier,
    prove: impl FnOnce(u64) -> anyhow::Result<Vec<candor_log::Hash>>,
) -> anyhow::Result<()> {
    match std::fs::read_to_string(state) {
        Ok(old_note) => {
            let old = Checkpoint::open(&old_note, log_key)
                .map_err(|e| anyhow!("state: the saved checkpoint does not verify: {e}"))?;
            if old.size > cp.size {
                bail!(
                    "consistency: the log went back from size {} to {}",
                    old.size,
                    cp.size
                );
            }
            if old.size > 0 {
                let proof = prove(old.size)?;
                verify_consistency(old.size, cp.size, &proof, &old.root.0, &cp.root.0).map_err(
                    |e| {
                        anyhow!(
                            "consistency: size {} is not a prefix of {}: {e}",
                            old.size,
                            cp.size
                        )
                    },
                )?;
            }
            ok(
                "consistency",
                format!(
                    "the log grew from {} to {} without rewriting",
                    old.size, cp.size
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ok(
                "consistency",
                "no checkpoint seen before; this one is now the reference",
            );
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", state.display())),
    }
    // Saved only after every check passed, and atomically, so a crash never leaves half a note.
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, note)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, state)?;
    Ok(())
}

/// Checks a customer's saved history offline, its pages in order: each page's checkpoint, every
/// event's commitment and inclusion, and that the events of all pages together are all the log
/// attributes to the customer, by the last page's checkpoint.
fn check_history(pages: &[PathBuf], trust: &Trust, state: Option<&Path>) -> anyhow::Result<()> {
    let field = |v: &serde_json::Value, name: &str| -> anyhow::Result<Vec<u8>> {
        let s = v[name]
            .as_str()
            .ok_or_else(|| anyhow!("history: `{name}` is missing"))?;
        B64.decode(s)
            .map_err(|_| anyhow!("history: `{name}` is not base64"))
    };
    let hash = |bytes: Vec<u8>| {
        candor_log::Hash::from_slice(&bytes)
            .ok_or_else(|| anyhow!("history: a hash is not 32 bytes"))
    };
    let mut mine = Frontier::default();
    // The customer's tree after as many events as the last verified history had.
    let earlier = state.map(read_history_state).transpose()?.flatten();
    let mut prefix_root = None;
    let mut last_index = None;
    let mut last_page = None;
    for path in pages {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let h: serde_json::Value =
            serde_json::from_str(&text).context("the history is not JSON")?;
        let note = h["checkpoint"]
            .as_str()
            .ok_or_else(|| anyhow!("history: no checkpoint"))?
            .to_owned();
        let cp = open_checked(&note, trust, "checkpoint")?;
        let events = h["events"]
            .as_array()
            .ok_or_else(|| anyhow!("history: no events"))?;
        for e in events {
            let index = e["leaf_index"]
                .as_u64()
                .ok_or_else(|| anyhow!("history: no leaf_index"))?;
            if last_index.is_some_and(|last| index <= last) {
                bail!("event {index}: the pages are not in log order");
            }
            last_index = Some(index);
            let nonce: [u8; 32] = field(e, "nonce")?
                .try_into()
                .map_err(|_| anyhow!("history: a nonce is not 32 bytes"))?;
            let canonical = e["canonical_event"]
                .as_str()
                .ok_or_else(|| anyhow!("history: no canonical_event"))?;
            let commitment = commitment::commit(&nonce, canonical.as_bytes());
            if commitment.to_vec() != field(e, "commitment")? {
                bail!("event {index}: the event and nonce do not open its commitment");
            }
            let proof = e["inclusion_proof"]
                .as_array()
                .ok_or_else(|| anyhow!("history: no inclusion_proof"))?
                .iter()
                .map(|p| {
                    hash(
                        B64.decode(p.as_str().unwrap_or_default())
                            .unwrap_or_default(),
                    )
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            candor_log::verify_inclusion(
                index,
                cp.size,
                &candor_log::leaf_hash(&commitment),
                &proof,
                &cp.root.0,
            )
            .map_err(|e| anyhow!("event {index}: inclusion: {e}"))?;
            mine.append(&commitment);
            if earlier.is_some_and(|(size, _, _)| size == mine.size()) {
                prefix_root = Some(mine.root());
            }
        }
        last_page = Some((h, note, cp));
    }
    let (h, note, cp) = last_page.ok_or_else(|| anyhow!("history: no pages given"))?;
    let note = note.as_str();
    ok(
        "events",
        format!(
            "all {} open their commitments and are in the tree",
            mine.size()
        ),
    );
    if !h["next"].is_null() {
        bail!(
            "history: the last page given says more follow (fetch `?after={}`)",
            h["next"]
        );
    }

    let c = &h["completeness"];
    if c.is_null() {
        bail!("completeness: the history carries no proof (retry once the checkpoint is cosigned)");
    }
    let label: [u8; 32] = field(c, "label")?
        .try_into()
        .map_err(|_| anyhow!("completeness: the label is not 32 bytes"))?;
    let head = Head {
        size: mine.size(),
        root: mine.root(),
    };
    let siblings = c["proof"]
        .as_array()
        .ok_or_else(|| anyhow!("completeness: no proof"))?
        .iter()
        .map(|n| {
            Ok(NodeRef {
                sum: n["sum"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("completeness: a node has no sum"))?,
                hash: hash(field(n, "hash")?)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = candor_log::note::signature_lines(note)?.text;
    let directory = from_checkpoint_text(text).map_err(|e| anyhow!("completeness: {e}"))?;
    verify_membership(&label, &head, &siblings, &directory).map_err(|_| {
        anyhow!(
            "completeness: the checkpoint's directory does not attribute exactly these {} events to you",
            head.size
        )
    })?;
    if directory.sum != cp.size {
        bail!(
            "completeness: the directory attributes {} entries, the log has {}",
            directory.sum,
            cp.size
        );
    }
    ok(
        "completeness",
        format!(
            "the directory attributes exactly these {} events to you",
            head.size
        ),
    );
    let Some(state) = state else { return Ok(()) };
    match earlier {
        Some((size, root, log_size)) => {
            if cp.size < log_size {
                bail!(
                    "history: the log went back from size {log_size} to {}",
                    cp.size
                );
            }
            let kept = size == 0 || prefix_root.is_some_and(|r: candor_log::Hash| r.ct_eq(&root));
            if !kept {
                bail!(
                    "history: the {size} events you were shown before are not all still here, in order"
                );
            }
            ok(
                "history",
                format!("your {size} earlier events are still the first ones"),
            );
        }
        None => ok(
            "history",
            "no history seen before; this one is now the reference",
        ),
    }
    // Saved only after every check passed, and atomically.
    let text = format!(
        "candor-history v1\n{}\n{}\n{}\n",
        head.size,
        B64.encode(head.root.0),
        cp.size
    );
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, state)?;
    Ok(())
}

/// The customer's tree size and root, and the log's size, from the last verified history.
fn read_history_state(path: &Path) -> anyhow::Result<Option<(u64, candor_log::Hash, u64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = || anyhow!("{} is not a history state file", path.display());
    let mut lines = text.lines();
    if lines.next() != Some("candor-history v1") {
        return Err(bad());
    }
    let size = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let root = lines
        .next()
        .and_then(|l| B64.decode(l).ok())
        .and_then(|b| candor_log::Hash::from_slice(&b))
        .ok_or_else(bad)?;
    let log_size = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    Ok(Some((size, root, log_size)))
}
