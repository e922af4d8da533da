//! End-to-end `prepare` on the hand-checked tiny fixture, in every input
//! format, plus the fatal-error cases.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use common::{file_counts, fixture, labels_and_splits, python_check, read_jsonl, rejects};
use longtail_data::{prepare, DataError, Label, PrepareOptions, PreparedDataset, Split};

fn tiny() -> (PathBuf, PathBuf) {
    let dir = fixture("tiny");
    (dir.join("items.jsonl"), dir.join("interactions.csv"))
}

fn run(items: &Path, interactions: &Path, out: &Path) -> longtail_data::PrepareSummary {
    prepare(
        &PrepareOptions::new(items, interactions, out),
        &longtail_progress::ignore,
    )
    .unwrap()
}

fn label_of(out: &Path) -> Vec<(String, String)> {
    labels_and_splits(out)
        .into_iter()
        .map(|(id, (label, _))| (id, label))
        .collect()
}

const EXPECTED_LABELS: [(&str, &str); 6] = [
    ("A", "head"),
    ("B", "head"),
    ("C", "head"),
    ("D", "tail"),
    ("E", "tail"),
    ("F", "tail"),
];

fn expected_labels() -> Vec<(String, String)> {
    EXPECTED_LABELS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn tiny_fixture_end_to_end() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let s = run(&items, &inter, &out);

    assert_eq!(
        (
            s.n_items,
            s.n_items_with_interactions,
            s.n_users,
            s.n_interactions
        ),
        (6, 5, 7, 15)
    );
    assert_eq!(s.empty_text, 1);
    assert_eq!(s.tail_rule.cut_ranks, [3]);
    assert_eq!(s.labels[&Label::Head].items, 3);
    assert_eq!(s.labels[&Label::Head].interactions, 12);
    assert!((s.labels[&Label::Head].interaction_share - 0.8).abs() < 1e-12);
    assert!((s.head_item_share - 0.5).abs() < 1e-12);
    assert!(s.gini > 0.0 && s.gini < 1.0);

    let counts = file_counts(&out);
    assert_eq!(counts["items"], (11, 6, 5));
    assert_eq!(counts["interactions"], (19, 15, 4));
    let expected_rejects: Vec<(String, u64, String)> = [
        ("items.jsonl", 7, "duplicate-id"),
        ("items.jsonl", 8, "invalid-json"),
        ("items.jsonl", 9, "empty-line"),
        ("items.jsonl", 10, "not-an-object"),
        ("items.jsonl", 11, "missing-id"),
        ("interactions.csv", 8, "unknown-item"),
        ("interactions.csv", 11, "invalid-timestamp"),
        ("interactions.csv", 13, "missing-id"),
        ("interactions.csv", 20, "wrong-column-count"),
    ]
    .iter()
    .map(|(f, l, r)| (f.to_string(), *l, r.to_string()))
    .collect();
    assert_eq!(rejects(&out), expected_rejects);
    let raw_rejects = read_jsonl(&out.join("rejects.jsonl"));
    assert_eq!(
        raw_rejects[0]["file"],
        items.display().to_string(),
        "path as given"
    );

    assert_eq!(label_of(&out), expected_labels());

    // cleaned text and fields
    let rows = read_jsonl(&out.join("items.jsonl"));
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["item_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A", "B", "C", "D", "E", "F"], "input order");
    let a = &rows[0];
    assert_eq!(a["fields"]["title"], "Stapler & staples");
    assert_eq!(a["fields"]["categories"], "Office, Staplers");
    assert_eq!(a["fields"]["description"], "Heavy duty stapler");
    assert_eq!(
        a["text"],
        "Stapler & staples | Acme | Office, Staplers | Heavy duty stapler"
    );
    assert_eq!(a["n_interactions"], 6);
    assert_eq!(a["first_seen"], 1000);
    assert_eq!(rows[2]["text"], "得力 订书机 12号 | Deli");
    assert_eq!(rows[3]["fields"]["description"], "Full-width text");
    assert_eq!(rows[4]["text"], "");
    assert_eq!(rows[4]["fields"]["title"], "");
    assert_eq!(rows[4]["first_seen"], serde_json::Value::Null);
    assert_eq!(rows[4]["n_interactions"], 0);

    // cleaned interactions: kept rows in input order, canonical header
    let csv = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 16);
    assert_eq!(lines[0], "user_id,item_id,timestamp");
    assert_eq!(lines[1], "u1,A,1000");
    assert_eq!(lines[7], "u3,B,1007");
    assert_eq!(lines[15], "u5,A,1017");

    // other outputs
    let png = std::fs::read(out.join("popularity.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prepare.json")).unwrap()).unwrap();
    assert_eq!(meta["command"], "prepare");
    assert_eq!(meta["options"]["tail_rule"], "pareto:0.8");
    assert_eq!(meta["options"]["split"], "random:0.7,0.1,0.2");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // loading back gives typed rows and the same summary
    let ds = PreparedDataset::load(&out).unwrap();
    assert_eq!(ds.items.len(), 6);
    assert_eq!(ds.items[0].label, Label::Head);
    assert_eq!(ds.summary, s);
    let n_split: usize = Split::ALL.iter().map(|&sp| ds.split(sp).count()).sum();
    assert_eq!(n_split, 6);

    python_check(&items, &inter, &out);
}

#[test]
fn identical_runs_give_identical_outputs_and_seed_matters() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(&items, &inter, &a);
    run(&items, &inter, &b);
    for f in ["items.jsonl", "interactions.csv", "rejects.jsonl"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    // stats.json differs only in the recorded output directory
    let stats = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap())
                .unwrap();
        v["options"]["out_dir"] = serde_json::Value::Null;
        v
    };
    assert_eq!(stats(&a), stats(&b));
    // over a few seeds the split of 6 items must change at least once
    let base = labels_and_splits(&a);
    let changed = (1..6).any(|seed| {
        let out = tmp.path().join(format!("s{seed}"));
        let mut opts = PrepareOptions::new(&items, &inter, &out);
        opts.seed = seed;
        prepare(&opts, &longtail_progress::ignore).unwrap();
        labels_and_splits(&out) != base
    });
    assert!(changed);
}

fn gzip(src: &Path, dst: &Path) {
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(src).unwrap()).unwrap();
    enc.finish().unwrap();
}

#[test]
fn gzip_inputs_with_and_without_gz_names_give_the_same_result() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    run(&items, &inter, &plain);
    let (gi, gc) = (
        tmp.path().join("items.jsonl.gz"),
        tmp.path().join("inter.csv.gz"),
    );
    gzip(&items, &gi);
    gzip(&inter, &gc);
    let out = tmp.path().join("gz");
    run(&gi, &gc, &out);
    // gzip content under a plain name is detected by magic bytes
    let (hi, hc) = (
        tmp.path().join("hidden.jsonl"),
        tmp.path().join("hidden.csv"),
    );
    std::fs::copy(&gi, &hi).unwrap();
    std::fs::copy(&gc, &hc).unwrap();
    let hidden = tmp.path().join("hidden");
    run(&hi, &hc, &hidden);
    for out in [&out, &hidden] {
        for f in ["items.jsonl", "interactions.csv"] {
            assert_eq!(
                std::fs::read(plain.join(f)).unwrap(),
                std::fs::read(out.join(f)).unwrap()
            );
        }
        let line_and_code = |o: &Path| {
            rejects(o)
                .into_iter()
                .map(|(_, l, c)| (l, c))
                .collect::<Vec<_>>()
        };
        assert_eq!(line_and_code(out), line_and_code(&plain));
    }
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_inputs_with_string_and_integer_columns() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    // the kept fixture rows, as parquet; timestamps as integers
    let kept_items: Vec<serde_json::Value> = std::fs::read_to_string(&items)
        .unwrap()
        .lines()
        .take(6)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text = |k: &str| -> ArrayRef {
        Arc::new(StringArray::from(
            kept_items
                .iter()
                .map(|v| v.get(k).map(longtail_data::render_value))
                .collect::<Vec<_>>(),
        ))
    };
    let pi = tmp.path().join("items.parquet");
    write_parquet(
        &pi,
        vec![
            ("item_id", text("item_id")),
            ("title", text("title")),
            ("brand", text("brand")),
        ],
    );
    let csv = std::fs::read_to_string(&inter).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| {
            r.len() == 3 && r[2].parse::<i64>().is_ok() && !r[0].is_empty() && r[1] != "ZZZ"
        })
        .collect();
    assert_eq!(rows.len(), 15);
    let pc = tmp.path().join("inter.parquet");
    let col = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| r[i]).collect::<Vec<_>>(),
        ))
    };
    let ts: ArrayRef = Arc::new(Int64Array::from(
        rows.iter()
            .map(|r| r[2].parse::<i64>().unwrap())
            .collect::<Vec<_>>(),
    ));
    write_parquet(
        &pc,
        vec![("user_id", col(0)), ("item_id", col(1)), ("timestamp", ts)],
    );

    let out = tmp.path().join("out");
    let s = run(&pi, &pc, &out);
    assert_eq!((s.n_items, s.n_interactions), (6, 15));
    assert_eq!(label_of(&out), expected_labels());
    assert!(rejects(&out).is_empty());
    assert_eq!(file_counts(&out)["interactions"], (15, 15, 0));

    // a required column missing from the parquet schema is fatal
    let bad = tmp.path().join("bad.parquet");
    write_parquet(&bad, vec![("user_id", col(0)), ("item_id", col(1))]);
    let err = prepare(
        &PrepareOptions::new(&pi, &bad, tmp.path().join("o2")),
        &longtail_progress::ignore,
    )
    .unwrap_err();
    assert!(
        matches!(err, DataError::MissingColumn { ref column, .. } if column == "timestamp"),
        "{err}"
    );
}

#[test]
fn movielens_style_rating_column_is_carried_and_three_tiers_work() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tmp.path().join("items.jsonl");
    std::fs::write(
        &items,
        "{\"item_id\": 1, \"title\": \"Toy Story\", \"year\": 1995, \"genres\": \"Animation Comedy\"}\n\
         {\"item_id\": \"2\", \"title\": \"GoldenEye\", \"year\": \"1995\"}\n\
         {\"item_id\": \"10\", \"title\": \"Richard III\"}\n",
    )
    .unwrap();
    let inter = tmp.path().join("ratings.csv");
    std::fs::write(&inter, "user_id,item_id,rating,timestamp\n7,1,5,100\n8,1,3,101\n7,2,4,102\n9,10,1,103\n9,1,2,104\n").unwrap();
    let out = tmp.path().join("out");
    let mut opts = PrepareOptions::new(&items, &inter, &out);
    opts.text_fields = vec!["title".into(), "year".into(), "genres".into()];
    opts.tail_rule = "pareto:0.8,0.5".parse().unwrap();
    opts.tiers = 3;
    let s = prepare(&opts, &longtail_progress::ignore).unwrap();
    assert_eq!(s.n_interactions, 5);
    let csv = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
    assert!(
        csv.starts_with("user_id,item_id,timestamp,rating\n7,1,100,5\n"),
        "{csv}"
    );
    let rows = read_jsonl(&out.join("items.jsonl"));
    assert_eq!(rows[0]["item_id"], "1");
    assert_eq!(rows[0]["text"], "Toy Story | 1995 | Animation Comedy");
    // counts 1:3, 10:1, 2:1 -> ranked 1, 10, 2 ("10" < "2"); shares .6 .8 1
    let labels: Vec<(String, String)> = label_of(&out);
    assert_eq!(
        labels,
        [("1", "head"), ("10", "torso"), ("2", "tail")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(s.tail_rule.cut_ranks, [1, 2]);
}

#[test]
fn time_split_puts_late_items_in_test() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut opts = PrepareOptions::new(&items, &inter, &out);
    opts.split = "time:1005".parse().unwrap();
    prepare(&opts, &longtail_progress::ignore).unwrap();
    // first seen: A 1000, B 1003, C 1005, D 1012, F 1013, E never
    let splits = labels_and_splits(&out);
    for (id, (_, split)) in &splits {
        assert_eq!(split == "test", id == "D" || id == "F", "{id}: {split}");
    }
    python_check(&items, &inter, &out);
}

/// Every event of one file's reading, in order (reading progress is one `longtail_progress`
/// event type, shared with `score` and the trainers).
#[test]
fn progress_is_reported_per_file() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |e: longtail_progress::Event<'_>| {
        use longtail_progress::Event;
        let name = |f: &Path| f.file_name().unwrap().to_string_lossy().into_owned();
        let line = match e {
            Event::ReadStart { file, bytes_total } => {
                format!("start {} {}", name(file), bytes_total.is_some())
            }
            Event::Read(r) => format!("read {} {} rows", name(r.file), r.rows),
            Event::ReadDone { file, rows } => format!("finish {} {rows}", name(file)),
            other => format!("{other:?}"),
        };
        seen.borrow_mut().push(line);
    };
    prepare(&PrepareOptions::new(&items, &inter, tmp.path()), &record).unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "start items.jsonl true",
            "read items.jsonl 11 rows",
            "finish items.jsonl 11",
            "start interactions.csv true",
            "read interactions.csv 19 rows",
            "finish interactions.csv 19"
        ]
    );
}

#[test]
fn fatal_errors_name_the_file() {
    let (items, inter) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let fails = |i: &Path, c: &Path| {
        prepare(&PrepareOptions::new(i, c, &out), &longtail_progress::ignore).unwrap_err()
    };

    let missing = tmp.path().join("missing.jsonl");
    let err = fails(&missing, &inter);
    assert!(
        matches!(err, DataError::Open { .. }) && err.to_string().contains("missing.jsonl"),
        "{err}"
    );

    let xlsx = tmp.path().join("items.xlsx");
    std::fs::write(&xlsx, "x").unwrap();
    let err = fails(&xlsx, &inter);
    assert!(
        matches!(err, DataError::UnknownFormat { .. }) && err.to_string().contains("items.xlsx"),
        "{err}"
    );

    let no_ts = tmp.path().join("no_ts.csv");
    std::fs::write(&no_ts, "user_id,item_id\nu1,A\n").unwrap();
    let err = fails(&items, &no_ts);
    assert!(
        err.to_string().contains("no_ts.csv") && err.to_string().contains("timestamp"),
        "{err}"
    );

    let junk = tmp.path().join("junk.jsonl");
    std::fs::write(&junk, "not json\n\n[1]\n").unwrap();
    let err = fails(&junk, &inter);
    assert!(
        matches!(err, DataError::NoUsableRows { .. }) && err.to_string().contains("junk.jsonl"),
        "{err}"
    );

    let unknown_items = tmp.path().join("unknown.csv");
    std::fs::write(&unknown_items, "user_id,item_id,timestamp\nu1,NOPE,1\n").unwrap();
    let err = fails(&items, &unknown_items);
    assert!(
        matches!(err, DataError::NoUsableRows { .. }) && err.to_string().contains("unknown.csv"),
        "{err}"
    );
    // a failed run leaves no half-written outputs behind
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "{names:?}");

    let mut bad_tiers = PrepareOptions::new(&items, &inter, &out);
    bad_tiers.tiers = 5;
    assert!(matches!(
        prepare(&bad_tiers, &longtail_progress::ignore).unwrap_err(),
        DataError::InvalidOption { .. }
    ));
    let mut no_bytes = PrepareOptions::new(&items, &inter, &out);
    no_bytes.max_line_bytes = 0;
    let err = prepare(&no_bytes, &longtail_progress::ignore).unwrap_err();
    assert!(matches!(err, DataError::InvalidOption { .. }), "{err}");

    // refusing to overwrite the input
    let dir = tmp.path().join("inplace");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&items, dir.join("items.jsonl")).unwrap();
    let err = prepare(
        &PrepareOptions::new(dir.join("items.jsonl"), &inter, &dir),
        &longtail_progress::ignore,
    )
    .unwrap_err();
    assert!(matches!(err, DataError::InvalidOption { .. }), "{err}");
}
