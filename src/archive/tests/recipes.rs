//! Layer recipes in the walk: a `NAME.recipe` entry is rebuilt through the caller's
//! [`Content`] and forwarded as `NAME`; a recipe the metadata does not name, or one the caller
//! cannot rebuild, is refused in one line before anything is committed; layer-sized entries
//! are copied to the caller's keeper.

use std::fs::File;
use std::sync::{Arc, Mutex};

use super::*;

/// Content that takes a recipe's bytes for the layer itself, or refuses with `refusal`, and
/// keeps what its keepers are given.
#[derive(Default)]
struct Echo {
    refusal: Option<String>,
    kept: Arc<Mutex<Vec<u8>>>,
}

impl Content for Echo {
    fn rebuild(
        &mut self,
        recipe: &mut dyn Read,
        spool: &mut File,
        _max_size: u64,
    ) -> std::result::Result<(u64, Digest), String> {
        if let Some(refusal) = &self.refusal {
            return Err(refusal.clone());
        }
        let mut layer = Vec::new();
        recipe.read_to_end(&mut layer).map_err(|e| e.to_string())?;
        spool.write_all(&layer).map_err(|e| e.to_string())?;
        Ok((layer.len() as u64, Digest::of(&layer)))
    }

    fn keeper(&mut self) -> Option<Box<dyn Write>> {
        Some(Box::new(Kept(Arc::clone(&self.kept))))
    }
}

struct Kept(Arc<Mutex<Vec<u8>>>);

impl Write for Kept {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A legacy archive of one image whose one layer `<v1>/layer.tar` is `layer`; the entry is
/// `entry_name` (the layer's own name, its recipe's, or another's) holding `entry`.
fn one_layer(layer: &[u8], entry_name: &str, entry: &[u8]) -> Vec<u8> {
    let (v1, cfg) = (hex(1), hex(2));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(layer).to_string()]},
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &entry_name.replace("V1", &v1), entry);
    file(&mut b, &format!("{cfg}.json"), &config);
    let manifest =
        format!(r#"[{{"Config":"{cfg}.json","RepoTags":["app:1"],"Layers":["{v1}/layer.tar"]}}]"#);
    file(&mut b, "manifest.json", manifest.as_bytes());
    finish(b)
}

fn forward_with(input: &[u8], content: &mut Echo) -> (Result<Contents>, Vec<u8>) {
    let mut sink = Vec::new();
    let result = forward(input, &mut sink, &Limits::default(), content, first_choice)
        .map(|forwarded| forwarded.contents);
    (result, sink)
}

#[test]
fn a_recipe_is_forwarded_as_the_layer_it_rebuilds() {
    let layer = pattern(3, 5000);
    let input = one_layer(&layer, "V1/layer.tar.recipe", &layer);
    let (result, sink) = forward_with(&input, &mut Echo::default());
    let contents = result.unwrap();
    let name = format!("{}/layer.tar", hex(1));
    assert_eq!(
        contents.recipes,
        [RebuiltLayer {
            name: name.clone(),
            diff_id: Digest::of(&layer)
        }]
    );
    assert_eq!(entry_data(&sink, &name), Some(layer));
    assert_eq!(entry_data(&sink, &format!("{name}.recipe")), None);
}

#[test]
fn a_recipe_for_a_layer_the_metadata_does_not_name_is_refused() {
    let layer = pattern(3, 5000);
    // Another directory's layer: manifest.json names V1's only.
    let input = one_layer(&layer, &format!("{}/layer.tar.recipe", hex(9)), &layer);
    let (result, sink) = forward_with(&input, &mut Echo::default());
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.starts_with(&format!(
            "the layer recipe for {}/layer.tar cannot be used: the archive names no layer",
            hex(9)
        )),
        "{err}"
    );
    assert_nothing_committed(&sink);

    // The named layer, rebuilt to other bytes than the config's diff ID.
    let input = one_layer(&layer, "V1/layer.tar.recipe", &pattern(4, 5000));
    let (result, sink) = forward_with(&input, &mut Echo::default());
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains("cannot be used: the archive names no layer"),
        "{err}"
    );
    assert_nothing_committed(&sink);
}

#[test]
fn a_recipe_the_content_cannot_rebuild_is_refused_in_one_line() {
    let layer = pattern(3, 5000);
    let input = one_layer(&layer, "V1/layer.tar.recipe", &layer);
    let mut content = Echo {
        refusal: Some("it is cut short".to_string()),
        ..Echo::default()
    };
    let (result, sink) = forward_with(&input, &mut content);
    assert_eq!(
        format!("{:#}", result.unwrap_err()),
        format!(
            "the layer recipe for {}/layer.tar cannot be used: it is cut short; nothing was loaded",
            hex(1)
        )
    );
    assert_nothing_committed(&sink);
}

#[test]
fn layer_sized_entries_reach_the_keeper_and_small_ones_do_not() {
    let big = pattern(5, 100_000);
    let input = one_layer(&big, "V1/layer.tar", &big);
    let mut content = Echo::default();
    let (result, _) = forward_with(&input, &mut content);
    result.unwrap();
    assert_eq!(*content.kept.lock().unwrap(), big);

    let small = pattern(5, 1000);
    let input = one_layer(&small, "V1/layer.tar", &small);
    let mut content = Echo::default();
    forward_with(&input, &mut content).0.unwrap();
    assert!(content.kept.lock().unwrap().is_empty());
}
