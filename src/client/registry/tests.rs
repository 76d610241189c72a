use std::io::{Read, Write};
use std::net::TcpStream;

use super::*;

/// A blob and its bytes.
type Taken = (Digest, Vec<u8>);

/// Keeps what it takes.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Taken>>>);

impl Blobs for Kept {
    fn blob(&mut self, digest: &Digest, _size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)?;
        lock(&self.0).push((digest.clone(), bytes));
        Ok(())
    }
}

/// One request on a connection of its own; the answer's status line and body.
fn ask(registry: &Registry, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port())).unwrap();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let status = read_line(&mut reader).unwrap().unwrap();
    let mut length = 0;
    while let Some(line) = read_line(&mut reader).unwrap() {
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().unwrap();
        }
    }
    let head = request.starts_with(b"HEAD");
    let mut body = vec![0; if head { 0 } else { length }];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_tls_hello_gets_a_plain_http_answer_so_the_engine_falls_back_to_http() {
    let registry = Registry::start().unwrap();
    let (status, _) = ask(&registry, &[0x16, 0x03, 0x01, 0x00, 0x05]);
    assert_eq!(status, "HTTP/1.0 400 Bad Request");
    let (status, body) = ask(&registry, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "{}"));
}

#[test]
fn head_answers_200_for_present_blobs_only_and_uploads_reach_the_sink_checked() {
    let registry = Registry::start().unwrap();
    let (held, data) = (Digest::of(b"held"), b"layer bytes");
    let fresh = Digest::of(data);
    let head = |digest: &Digest| {
        ask(
            &registry,
            format!("HEAD /v2/a/b/blobs/{digest} HTTP/1.1\r\n\r\n").as_bytes(),
        )
        .0
    };
    // Before set_present, everything is present: the first push learns the manifests only.
    assert_eq!(head(&fresh), "HTTP/1.1 200 OK");
    registry.set_present(HashSet::from([held.clone()]));
    assert_eq!(head(&held), "HTTP/1.1 200 OK");
    assert_eq!(head(&fresh), "HTTP/1.1 404 Not Found");

    let kept = Kept::default();
    registry.set_sink(Box::new(kept.clone()));
    let (status, _) = ask(&registry, b"POST /v2/a/b/blobs/uploads/ HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 202 Accepted");
    // A chunk by PATCH waits in a spool; the PUT with the digest ends the upload.
    let (status, _) = ask(
        &registry,
        b"PATCH /v2/a/b/blobs/uploads/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nlayer \r\n0\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 202 Accepted");
    let put = format!(
        "PUT /v2/a/b/blobs/uploads/1?digest={} HTTP/1.1\r\nContent-Length: 5\r\n\r\nbytes",
        fresh.as_str().replace(':', "%3A")
    );
    assert_eq!(ask(&registry, put.as_bytes()).0, "HTTP/1.1 201 Created");
    assert_eq!(*lock(&kept.0), vec![(fresh.clone(), data.to_vec())]);
    // Now uploaded, it is present; a second upload of it is dropped.
    assert_eq!(head(&fresh), "HTTP/1.1 200 OK");
    assert_eq!(registry.spoiled(), None);

    // Bytes that are not their digest spoil the push.
    let put = format!(
        "PUT /v2/a/b/blobs/uploads/2?digest={held} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    );
    assert_eq!(ask(&registry, put.as_bytes()).0, "HTTP/1.1 500 Error");
    assert!(registry.spoiled().unwrap().contains("arrived as"));
}

#[test]
fn manifests_are_kept_and_the_last_put_by_tag_is_the_root() {
    let registry = Registry::start().unwrap();
    let manifest = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let index = br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
    let put = |reference: &str, body: &[u8]| {
        let mut request = format!(
            "PUT /v2/dokku-image-push/manifests/{reference} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        ask(&registry, &request).0
    };
    assert_eq!(
        put(Digest::of(manifest).as_str(), manifest),
        "HTTP/1.1 201 Created"
    );
    assert_eq!(put("1-2", index), "HTTP/1.1 201 Created");
    let delivered = registry.take_delivered();
    assert_eq!(delivered.root, Some(Digest::of(index)));
    assert_eq!(delivered.manifests.len(), 2);
    assert_eq!(
        delivered.manifests[&Digest::of(manifest)].media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(registry.take_delivered().manifests.is_empty());
}

#[test]
fn a_name_may_have_slashes_the_last_kind_ends_it() {
    assert_eq!(
        route("/v2/a/blobs/b/blobs/sha256:1"),
        Some(("a/blobs/b", "blobs", "sha256:1"))
    );
    assert_eq!(
        route("/v2/x/blobs/uploads/"),
        Some(("x", "blobs/uploads", ""))
    );
    assert_eq!(route("/v2/x/manifests/v1"), Some(("x", "manifests", "v1")));
    assert_eq!(percent_decoded("sha256%3Aab%zz"), "sha256:ab%zz");
}
