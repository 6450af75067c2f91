//! The codec's samples (test data in `support/samples.rs`) are what they claim and survive a
//! round trip through the codec.

#[allow(dead_code)] // each test binary uses part of the samples
#[path = "support/samples.rs"]
mod samples;

use exsync_ews::ops::{GetItemResponse, SyncFolderItemsResponse, OPERATIONS};
use exsync_ews::types::Item;

use exsync_ews::ops::parse_request;
use exsync_ews::xml::XmlLimits;
use samples::*;

#[test]
fn samples_are_what_they_claim() {
    let Item::Message(m) = message(3, 4096) else {
        panic!("not a message")
    };
    let body = m.base.body.unwrap().content;
    assert!((4096..4096 + 400).contains(&body.len()), "{}", body.len());
    let recipients = m.to_recipients.len() + m.cc_recipients.len();
    assert!((5..=20).contains(&recipients));
    assert_eq!(
        sync_folder_items_response(512).messages[0]
            .payload
            .as_ref()
            .unwrap()
            .changes
            .len(),
        512
    );
}

#[test]
fn every_sample_request_parses_back() {
    let limits = XmlLimits::default();
    for (xml, request) in every_request_xml().iter().zip(every_request()) {
        let (_, back) = parse_request(xml.as_bytes(), &limits).unwrap();
        assert_eq!(back, request);
    }
}

#[test]
fn every_sample_response_parses_back() {
    let limits = XmlLimits::default();
    let xml = get_item_messages_response(3, 4096).to_xml();
    assert_eq!(
        GetItemResponse::parse(xml.as_bytes(), &limits).unwrap(),
        get_item_messages_response(3, 4096)
    );
    let xml = sync_folder_items_response(100).to_xml();
    assert_eq!(
        SyncFolderItemsResponse::parse(xml.as_bytes(), &limits).unwrap(),
        sync_folder_items_response(100)
    );
    assert_eq!(every_response().len(), 2 * OPERATIONS.len());
}
