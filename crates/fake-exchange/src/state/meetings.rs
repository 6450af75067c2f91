//! Meeting messages between mailboxes: invitations, responses and cancellations delivered as Exchange does.

use super::*;

impl Inner {
    /// A meeting message (request, cancellation, response) of class `class` from `from`,
    /// delivered to `to`'s inbox when that mailbox is in the fake (elsewhere otherwise), and
    /// kept in `from`'s Sent Items when `save_copy`.
    pub(crate) fn send_meeting_message(
        &mut self,
        from: &str,
        to: &str,
        class: &str,
        subject: String,
        body: Option<Body>,
        save_copy: bool,
    ) -> Result<(), FakeError> {
        let now = Utc::now();
        let sender = EmailAddress::new(None, from);
        let message = Message {
            base: ItemBase {
                item_class: Some(class.to_owned()),
                subject: Some(subject),
                body,
                date_time_received: Some(now),
                date_time_sent: Some(now),
                ..ItemBase::default()
            },
            from: Some(sender.clone()),
            sender: Some(sender),
            to_recipients: vec![EmailAddress::new(None, to)],
            is_read: Some(false),
            internet_message_id: Some(format!("<{}@exsync.test>", uuid::Uuid::new_v4())),
            ..Message::default()
        };
        if let Some(canonical) = self.mailbox(to).map(|m| m.address.clone()) {
            self.insert_item(
                &canonical,
                DistinguishedFolderName::Inbox,
                Item::Message(message.clone()),
            )?;
        }
        if save_copy {
            let mut copy = message;
            copy.is_read = Some(true);
            self.insert_item(
                from,
                DistinguishedFolderName::SentItems,
                Item::Message(copy),
            )?;
        }
        Ok(())
    }

    /// The organizer's invitations: every attendee with a mailbox in the fake gets a meeting
    /// request in the inbox and the meeting (same UID, their own copy) in the calendar.
    pub(crate) fn deliver_invitations(
        &mut self,
        organizer: &str,
        meeting: &Item,
    ) -> Result<(), FakeError> {
        let Item::CalendarItem(c) = meeting else {
            return Ok(());
        };
        for attendee in &c.required_attendees {
            let Some(canonical) = self.mailbox(&attendee.address).map(|m| m.address.clone()) else {
                continue;
            };
            if key(&canonical) == key(organizer) {
                continue;
            }
            self.send_meeting_message(
                organizer,
                &canonical,
                "IPM.Schedule.Meeting.Request",
                c.base.subject.clone().unwrap_or_default(),
                c.base.body.clone(),
                false,
            )?;
            let mut copy = c.clone();
            copy.base.item_id = None;
            copy.base.parent_folder_id = None;
            copy.base.categories.clear();
            copy.my_response_type = None;
            copy.organizer
                .get_or_insert_with(|| EmailAddress::new(None, organizer));
            self.insert_item(
                &canonical,
                DistinguishedFolderName::Calendar,
                Item::CalendarItem(copy),
            )?;
        }
        Ok(())
    }

    /// The items of `address`'s calendar that are copies of the meeting with `uid`.
    pub(crate) fn meeting_copies(&self, address: &str, uid: &str) -> Vec<u64> {
        self.mailbox(address)
            .and_then(|m| m.folder(DistinguishedFolderName::Calendar))
            .map(|f| {
                f.items
                    .iter()
                    .filter(|(_, s)| {
                        matches!(&s.item, Item::CalendarItem(c) if c.uid.as_deref() == Some(uid))
                    })
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The organizer cancels: every attendee with a mailbox in the fake gets a cancellation,
    /// and their copy of the meeting is marked cancelled ("Canceled: " before its subject).
    pub(crate) fn deliver_cancellations(
        &mut self,
        organizer: &str,
        meeting: &Item,
        save_copy: bool,
    ) -> Result<(), FakeError> {
        let Item::CalendarItem(c) = meeting else {
            return Ok(());
        };
        let subject = format!("Canceled: {}", c.base.subject.clone().unwrap_or_default());
        let mut saved = !save_copy;
        for attendee in &c.required_attendees {
            if key(&attendee.address) == key(organizer) {
                continue;
            }
            self.send_meeting_message(
                organizer,
                &attendee.address,
                "IPM.Schedule.Meeting.Canceled",
                subject.clone(),
                None,
                !saved,
            )?;
            saved = true;
            let Some(canonical) = self.mailbox(&attendee.address).map(|m| m.address.clone()) else {
                continue;
            };
            let Some(uid) = c.uid.as_deref() else {
                continue;
            };
            for n in self.meeting_copies(&canonical, uid) {
                let subject = subject.clone();
                self.update_item(&canonical, n, false, move |item| {
                    if let Item::CalendarItem(copy) = item {
                        copy.is_cancelled = Some(true);
                        copy.base.subject = Some(subject);
                    }
                });
            }
        }
        Ok(())
    }
}
