//! Criterion micro benchmarks of the EWS codec: parsing SyncFolderItems and GetItem responses
//! (items/s and MB/s) and serialising the requests the sync sends.
//!
//! `cargo bench -p exsync-ews --bench codec`; inputs come from `tests/support/samples.rs` (4 KB HTML bodies,
//! 5–20 recipients), so figures are comparable between runs.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use exsync_ews::ops::{GetItemResponse, SyncFolderItemsResponse};
use exsync_ews::soap::{ExchangeVersion, RequestHeader};
use exsync_ews::xml::XmlLimits;

#[allow(dead_code)] // the benchmarks use some of the samples only
#[path = "../tests/support/samples.rs"]
mod samples;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// One parse case, measured twice: per item (items/s) and per byte (MB/s).
fn parse_case(
    c: &mut Criterion,
    name: &str,
    xml: &str,
    items: u64,
    parse: fn(&[u8], &XmlLimits) -> usize,
) {
    let limits = XmlLimits::default();
    let bytes = xml.as_bytes();
    assert_eq!(
        parse(bytes, &limits) as u64,
        items,
        "{name}: sample does not parse"
    );
    let mut group = c.benchmark_group(format!("parse/{name}"));
    group.throughput(Throughput::Elements(items));
    group.bench_function("items", |b| b.iter(|| parse(black_box(bytes), &limits)));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("bytes", |b| b.iter(|| parse(black_box(bytes), &limits)));
    group.finish();
}

fn sync_changes(bytes: &[u8], limits: &XmlLimits) -> usize {
    SyncFolderItemsResponse::parse(bytes, limits)
        .expect("parses")
        .first()
        .expect("success")
        .changes
        .len()
}

fn get_items(bytes: &[u8], limits: &XmlLimits) -> usize {
    GetItemResponse::parse(bytes, limits)
        .expect("parses")
        .messages
        .iter()
        .filter_map(|m| m.payload.as_ref())
        .map(Vec::len)
        .sum()
}

fn parsing(c: &mut Criterion) {
    for n in [100u64, 512] {
        let xml = samples::sync_folder_items_response(n as usize).to_xml();
        parse_case(
            c,
            &format!("SyncFolderItems_{n}_changes"),
            &xml,
            n,
            sync_changes,
        );
    }
    let xml = samples::get_item_messages_response(100, 4096).to_xml();
    parse_case(c, "GetItem_100_messages_4KB_html", &xml, 100, get_items);
    let xml = samples::get_item_calendar_response(100).to_xml();
    parse_case(c, "GetItem_100_calendar_items", &xml, 100, get_items);
}

fn serialising(c: &mut Criterion) {
    let header = RequestHeader::impersonating(ExchangeVersion::Exchange2016, "alice@contoso.test");
    let get_item = samples::get_item_request(100);
    let create = samples::create_item_request();
    let sync = samples::sync_folder_items_request();
    let mut group = c.benchmark_group("serialise");
    group.throughput(Throughput::Bytes(get_item.to_xml(&header).len() as u64));
    group.bench_function("GetItem_request_100_ids", |b| {
        b.iter(|| black_box(&get_item).to_xml(&header))
    });
    group.throughput(Throughput::Bytes(create.to_xml(&header).len() as u64));
    group.bench_function("CreateItem_message_4KB_html", |b| {
        b.iter(|| black_box(&create).to_xml(&header))
    });
    group.throughput(Throughput::Bytes(sync.to_xml(&header).len() as u64));
    group.bench_function("SyncFolderItems_request", |b| {
        b.iter(|| black_box(&sync).to_xml(&header))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = parsing, serialising
}
criterion_main!(benches);
