//! What the host holds (`image:layers APP`'s one line of JSON) and, from it and the image's
//! layers, what a push may leave out (docs/engines.md §5): on the classic store a layer whose
//! ChainID the host holds, whatever its compression in the archive; on the containerd store
//! only a blob whose very digest the host's content store holds.

use std::collections::HashSet;

use anyhow::Context;

use crate::delta::recipe::Format;
use crate::digest::{chain_ids, Digest};
use crate::protocol::{self, Answer, CLASSIC, CONTAINERD};

/// `image:layers`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// The ChainIDs of the layers the host's classic store holds.
    Classic(HashSet<Digest>),
    /// The layer blob digests of the host's content store.
    Containerd(HashSet<Digest>),
}

impl Holds {
    pub fn parse(line: &str) -> anyhow::Result<Holds> {
        let answer: Answer = serde_json::from_str(line.trim())
            .with_context(|| format!("{} printed no layer list: {line:?}", protocol::LAYERS))?;
        let digests = |list: Vec<String>| -> anyhow::Result<HashSet<Digest>> {
            list.iter()
                .map(|d| {
                    Digest::parse(d)
                        .with_context(|| format!("{} named {d:?}, not a digest", protocol::LAYERS))
                })
                .collect()
        };
        match answer.store.as_str() {
            CLASSIC => Ok(Holds::Classic(digests(answer.chains)?)),
            CONTAINERD => Ok(Holds::Containerd(digests(answer.blobs)?)),
            other => anyhow::bail!("{} named an unknown store {other:?}", protocol::LAYERS),
        }
    }

    /// The host plugin's version the same line names, when it names one.
    pub fn plugin_version(line: &str) -> Option<String> {
        serde_json::from_str::<Answer>(line.trim()).ok()?.version
    }

    /// The recipe format the same line says the host takes, when it takes recipes and will
    /// answer chunk queries (docs/delta.md).
    pub fn takes_recipes(line: &str) -> Option<Format> {
        let answer = serde_json::from_str::<Answer>(line.trim()).ok()?;
        protocol::recipe_format(answer.delta)
    }
}

/// What the filter leaves out of the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftOutPlan {
    /// Layers by diff ID (classic hosts): named blobs, or found by hashing.
    pub diff_ids: HashSet<Digest>,
    /// Blobs by their own digest (containerd hosts).
    pub blobs: HashSet<Digest>,
    /// The image's diff IDs, bottom first: a legacy layer's directory is matched against
    /// their ChainIDs.
    pub image_layers: Vec<Digest>,
    /// A legacy archive is sent in the OCI form a containerd host's store would make of it
    /// (`client::to_oci`), whose layer blobs are named by diff ID.
    pub to_oci: bool,
}

impl LeftOutPlan {
    /// For an image of these layers (diff IDs, bottom first); nothing for an unknown host.
    pub fn plan(held: Option<&Holds>, diff_ids: &[Digest]) -> LeftOutPlan {
        match held {
            None => LeftOutPlan::default(),
            Some(Holds::Classic(chains)) => LeftOutPlan {
                diff_ids: diff_ids
                    .iter()
                    .zip(chain_ids(diff_ids))
                    .filter(|(_, chain)| chains.contains(chain))
                    .map(|(diff_id, _)| diff_id.clone())
                    .collect(),
                blobs: HashSet::new(),
                image_layers: diff_ids.to_vec(),
                to_oci: false,
            },
            Some(Holds::Containerd(blobs)) => LeftOutPlan {
                blobs: blobs.clone(),
                image_layers: diff_ids.to_vec(),
                to_oci: true,
                ..LeftOutPlan::default()
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.diff_ids.is_empty() && self.blobs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[test]
    fn parses_both_stores_and_refuses_the_rest() {
        let (a, b) = (digest(1), digest(2));
        let classic = Holds::parse(&format!(
            "{{\"store\":\"classic\",\"chains\":[\"{a}\"],\"blobs\":[]}}\n"
        ))
        .unwrap();
        assert_eq!(classic, Holds::Classic(HashSet::from([a.clone()])));
        let c8d = Holds::parse(&format!(
            "{{\"store\":\"containerd\",\"chains\":[],\"blobs\":[\"{b}\"]}}"
        ))
        .unwrap();
        assert_eq!(c8d, Holds::Containerd(HashSet::from([b])));
        for bad in [
            "",
            "not json",
            "{\"store\":\"zfs\"}",
            "{\"store\":\"classic\",\"chains\":[\"sha256:x\"]}",
        ] {
            assert!(Holds::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classic_leaves_out_layers_whose_chain_is_held() {
        let layers = [digest(1), digest(2), digest(3)];
        let chains = chain_ids(&layers);
        // the host holds the bottom two layers' chain, and layer 3's diff ID on another base
        let held = Holds::Classic(HashSet::from([
            chains[0].clone(),
            chains[1].clone(),
            layers[2].clone(),
        ]));
        let plan = LeftOutPlan::plan(Some(&held), &layers);
        assert_eq!(
            plan.diff_ids,
            HashSet::from([layers[0].clone(), layers[1].clone()])
        );
        assert!(plan.blobs.is_empty());
        assert!(LeftOutPlan::plan(None, &layers).is_empty());
        let c8d = LeftOutPlan::plan(
            Some(&Holds::Containerd(HashSet::from([digest(9)]))),
            &layers,
        );
        assert_eq!(c8d.blobs, HashSet::from([digest(9)]));
        assert!(c8d.diff_ids.is_empty());
    }
}
