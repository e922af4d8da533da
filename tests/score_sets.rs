//! `longtail score` on inputs made of many files (a directory, a glob, a manifest): shards of
//! whole files and parquet row groups read each input byte once, their parts concatenate to
//! the unsharded output byte for byte, and a killed shard resumes to the same bytes.

mod common;
use common::tiny::tiny_classifier as tiny_checkpoint;
use common::{longtail, run_ok, score_command};

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use serde_json::{json, Value};

const WORDS: [&str; 12] = [
    "printer",
    "desk",
    "chair",
    "laptop",
    "stapler",
    "monitor",
    "refill",
    "cartridge",
    "vintage",
    "adapter",
    "black",
    "office",
];

/// Row `i`: id, title, brand, description (varied lengths so batches get sorted).
fn row(i: usize) -> [String; 4] {
    let w = |k: usize| WORDS[(i * 7 + k * 5) % WORDS.len()];
    let desc: Vec<&str> = (0..(i % 11)).map(w).collect();
    [
        format!("I{i:06}"),
        format!("{} {} {}", w(1), w(2), i % 100),
        w(3).to_string(),
        desc.join(" "),
    ]
}

fn jsonl_text(rows: std::ops::Range<usize>) -> String {
    rows.map(|i| {
        let [id, title, brand, description] = row(i);
        format!(
            "{}\n",
            json!({"item_id": id, "title": title, "brand": brand, "description": description})
        )
    })
    .collect()
}

fn csv_text(rows: std::ops::Range<usize>) -> String {
    let mut s = String::from("item_id,title,brand,description\n");
    for i in rows {
        let [id, title, brand, description] = row(i);
        s.push_str(&format!("{id},{title},{brand},\"{description}\"\n"));
    }
    s
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if gz {
        let f = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

fn write_parquet(path: &Path, rows: std::ops::Range<usize>, group_rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let cols: Vec<Vec<String>> = (0..4)
        .map(|c| rows.clone().map(|i| row(i)[c].clone()).collect())
        .collect();
    let names = ["item_id", "title", "brand", "description"];
    let batch = RecordBatch::try_from_iter(
        names
            .iter()
            .zip(cols)
            .map(|(n, c)| (*n, Arc::new(StringArray::from(c)) as ArrayRef)),
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// A directory of 8 data files in 3 formats (one parquet file of 7 row groups, gzip and
/// plain text, two bad rows) plus files a listing must skip. Returns its row count.
fn dump(dir: &Path) -> usize {
    write(
        &dir.join("a/part-00.jsonl"),
        jsonl_text(0..150).as_bytes(),
        false,
    );
    write(
        &dir.join("a/part-01.jsonl.gz"),
        jsonl_text(150..300).as_bytes(),
        true,
    );
    let mut bad_csv = csv_text(300..450);
    bad_csv.push_str("only,three,fields\n");
    write(&dir.join("b/part-02.csv"), bad_csv.as_bytes(), false);
    write(
        &dir.join("b/part-03.csv.gz"),
        csv_text(450..550).as_bytes(),
        true,
    );
    write_parquet(&dir.join("c/part-04.parquet"), 550..950, 64);
    write_parquet(&dir.join("c/part-05.parquet"), 950..1050, 1000);
    let mut bad_jsonl = jsonl_text(1050..1150);
    bad_jsonl.push_str("not json\n");
    write(&dir.join("part-06.jsonl"), bad_jsonl.as_bytes(), false);
    write_parquet(&dir.join("part-07.parquet"), 1150..1200, 16);
    write(&dir.join("_SUCCESS"), b"", false);
    write(&dir.join(".part-04.parquet.crc"), b"crc", false);
    write(&dir.join("_temporary/0/part-99.jsonl"), b"{}\n", false);
    1202
}

/// Runs score; returns the sidecar (rows, bytes read, footers read).
fn score(ckpt: &Path, input: &Path, output: &Path, extra: &[&str]) -> Value {
    let out = run_ok(&mut score_command(ckpt, input, output, extra));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("input read"), "{stdout}");
    sidecar(output)
}

fn sidecar(output: &Path) -> Value {
    let path = format!("{}.progress.json", output.display());
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn rejects(output: &Path) -> Vec<u8> {
    std::fs::read(format!("{}.rejects.jsonl", output.display())).unwrap()
}

fn dir_bytes(dir: &Path, skip_hidden: bool) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if skip_hidden && (name.starts_with('_') || name.starts_with('.')) {
            continue;
        }
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path(), skip_hidden)
        } else {
            m.len()
        };
    }
    total
}

/// The bytes a reader of `dir` needs: text files whole, parquet files' column chunks (from
/// the parquet crate's own reading of the footer).
fn data_bytes(dir: &Path) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            total += data_bytes(&path);
        } else if name.ends_with(".parquet") {
            let r = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            for rg in r.metadata().row_groups() {
                total += rg.columns().iter().map(|c| c.byte_range().1).sum::<u64>();
            }
        } else {
            total += std::fs::metadata(&path).unwrap().len();
        }
    }
    total
}

#[test]
fn directory_shards_read_each_byte_once_and_merge_to_the_unsharded_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("dump");
    let rows = dump(&input);
    let input_bytes = dir_bytes(&input, true);
    let args = ["--chunk-rows", "64"];

    let whole = tmp.path().join("whole.jsonl");
    let w = score(&ckpt, &input, &whole, &args);
    assert_eq!(w["rows_consumed"], rows as u64);
    assert_eq!(w["rejected"], 2);
    assert_eq!(w["input_len"], input_bytes);
    let whole_read = w["bytes_read"].as_u64().unwrap();
    // Every data byte once: all of each text file, and each parquet file's column chunks
    // (its footer is counted apart; its magic and page indexes are not needed).
    assert_eq!(
        whole_read,
        data_bytes(&input),
        "{whole_read} of {input_bytes}"
    );
    let footers = w["footer_bytes"].as_u64().unwrap();
    assert!(footers > 0 && whole_read + footers <= input_bytes);
    // Rejects name their file and line.
    let rej: Vec<Value> = String::from_utf8(rejects(&whole))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rej[0]["file"], "b/part-02.csv");
    assert_eq!(rej[0]["line"], 152);
    assert_eq!(rej[1]["file"], "part-06.jsonl");
    assert_eq!(rej[1]["line"], 101);

    for n in [3usize, 6] {
        let parts = tmp.path().join(format!("parts-{n}"));
        let mut cat = Vec::new();
        let mut cat_rejects = Vec::new();
        let (mut read, mut footer_reads) = (0, 0);
        for k in 0..n {
            let part = parts.join(format!("part-{k}.jsonl"));
            let s = score(
                &ckpt,
                &input,
                &part,
                &[&args[..], &["--shard", &format!("{k}/{n}")]].concat(),
            );
            read += s["bytes_read"].as_u64().unwrap();
            footer_reads += s["footer_bytes"].as_u64().unwrap();
            cat.extend(std::fs::read(&part).unwrap());
            cat_rejects.extend(rejects(&part));
        }
        assert_eq!(read, whole_read, "{n} shards read each data byte once");
        // A footer is read again only by a shard its file reaches into: at most one more
        // read per shard boundary, of a footer no bigger than the largest.
        assert!(
            footer_reads >= footers && footer_reads <= footers * n as u64,
            "{n}"
        );
        assert_eq!(cat, std::fs::read(&whole).unwrap(), "{n} shards");
        assert_eq!(cat_rejects, rejects(&whole));

        let merged = tmp.path().join(format!("merged-{n}.jsonl"));
        let mut merge = longtail();
        merge
            .args(["score", "--merge"])
            .arg(&parts)
            .arg("--output")
            .arg(&merged);
        run_ok(&mut merge);
        assert_eq!(
            std::fs::read(&merged).unwrap(),
            std::fs::read(&whole).unwrap()
        );
    }

    // The same rows as one file: each of 3 shards counts the whole file first.
    let single = tmp.path().join("single.jsonl");
    write(&single, jsonl_text(0..1200).as_bytes(), false);
    let single_len = std::fs::metadata(&single).unwrap().len();
    let mut read = 0;
    for k in 0..3 {
        let part = tmp.path().join(format!("single-part-{k}.jsonl"));
        let s = score(
            &ckpt,
            &single,
            &part,
            &[&args[..], &["--shard", &format!("{k}/3")]].concat(),
        );
        read += s["bytes_read"].as_u64().unwrap();
    }
    assert!(read > 3 * single_len, "{read} vs {single_len}");

    // A glob and a manifest name the same files: the same output.
    let listed: Vec<String> = std::fs::read_to_string(tmp.path().join("whole.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), 1200);
    let manifest = tmp.path().join("files.txt");
    std::fs::write(
        &manifest,
        "# the dump, in listing order\ndump/a/part-00.jsonl\ndump/a/part-01.jsonl.gz\n\
         dump/b/part-02.csv\ndump/b/part-03.csv.gz\ndump/c/part-04.parquet\n\
         dump/c/part-05.parquet\ndump/part-06.jsonl\ndump/part-07.parquet\n",
    )
    .unwrap();
    let via_manifest = tmp.path().join("manifest.jsonl");
    let at = std::path::PathBuf::from(format!("@{}", manifest.display()));
    score(&ckpt, &at, &via_manifest, &args);
    assert_eq!(
        std::fs::read(&via_manifest).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let via_glob = tmp.path().join("glob.jsonl");
    score(&ckpt, &input.join("c/*.parquet"), &via_glob, &args);
    assert_eq!(sidecar(&via_glob)["rows_consumed"], 500);

    // An output inside the input directory would be read by the next listing.
    let out = score_command(&ckpt, &input, &input.join("scores.jsonl"), &args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("inside the input directory"),
        "{err}"
    );
}

#[test]
fn a_killed_shard_of_a_directory_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("dump");
    for f in 0..8 {
        let rows = f * 1000..(f + 1) * 1000;
        if f % 2 == 0 {
            write(
                &input.join(format!("part-{f}.jsonl")),
                jsonl_text(rows).as_bytes(),
                false,
            );
        } else {
            write_parquet(&input.join(format!("part-{f}.parquet")), rows, 300);
        }
    }
    let args = ["--chunk-rows", "40", "--shard", "1/2"];
    let reference = tmp.path().join("reference.jsonl");
    let r = score(&ckpt, &input, &reference, &args);
    assert_eq!(r["rows_consumed"], 4000);

    let out = tmp.path().join("killed.jsonl");
    let mut child = score_command(&ckpt, &input, &out, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let progress = tmp.path().join("killed.jsonl.progress.json");
    loop {
        let unit = std::fs::read(&progress)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["unit"].as_u64())
            .unwrap_or(0);
        // Past the first unit: the resume must skip whole units and enter one mid-way.
        if unit >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = sidecar(&out);
    assert_eq!(killed["complete"], false, "killed mid-way");

    let resumed = score(&ckpt, &input, &out, &[&args[..], &["--resume"]].concat());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
    assert_eq!(rejects(&out), rejects(&reference));
    assert_eq!(resumed["rows_consumed"], 4000);
    // The resume re-read only the unit it entered mid-way.
    let again = resumed["bytes_read"].as_u64().unwrap() - r["bytes_read"].as_u64().unwrap();
    assert!(again < 200_000, "re-read {again} bytes");
}
