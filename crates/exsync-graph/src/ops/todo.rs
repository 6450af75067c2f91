//! Microsoft To Do: lists, task delta per list, create / update / delete with ETags
//! (GD-TDELTA, GD-TDELTA-PERM, GD-TPOST-PERM). App-only To Do is recent and its live
//! behaviour UNVERIFIED (TP-ATLAS148); `Tasks.*` cannot be scoped to some mailboxes
//! (GD-LIMIT, EXO-RBAC), so a Tasks grant covers the whole tenant.

use crate::client::{Call, GraphClient, Target};
use crate::error::{DeltaRole, GraphError};
use crate::model::{Collection, DeltaPage, TodoTask, TodoTaskList};
use reqwest::Method;

const TASKS_PERMISSION: &str = "Tasks.ReadWrite.All";

/// Most pages of lists read (a mailbox with more than this many pages of lists is refused
/// rather than read forever).
const MAX_LIST_PAGES: usize = 50;

impl GraphClient {
    /// Every To Do list of the mailbox (the default one has `wellknownListName = defaultList`).
    /// `GET /users/{id}/todo/lists`, following `@odata.nextLink`.
    pub async fn todo_lists(&self, target: &Target) -> Result<Vec<TodoTaskList>, GraphError> {
        let mut url = self.user_url(&target.mailbox, &["todo", "lists"]);
        let mut lists = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let call = Call::new(
                "todoTaskList.list",
                target,
                Method::GET,
                url,
                TASKS_PERMISSION,
            );
            let page: Collection<TodoTaskList> = self.fetch(&call).await?;
            lists.extend(page.value);
            match page.next_link {
                Some(next) => url = self.link(&next)?,
                None => return Ok(lists),
            }
        }
        Ok(lists)
    }

    /// The first page of a task delta round for list `list_id`.
    /// `GET /users/{id}/todo/lists/{id}/tasks/delta`.
    pub async fn todo_task_delta(
        &self,
        target: &Target,
        list_id: &str,
    ) -> Result<DeltaPage<TodoTask>, GraphError> {
        let url = self.user_url(
            &target.mailbox,
            &["todo", "lists", list_id, "tasks", "delta"],
        );
        let call = Call::new("todoTask.delta", target, Method::GET, url, TASKS_PERMISSION)
            .delta(DeltaRole::Start)
            .prefer(self.page_size_preference());
        self.delta_page(&call).await
    }

    /// The next page of a task delta round, or the first of the next round.
    pub async fn todo_task_delta_next(
        &self,
        target: &Target,
        link: &str,
    ) -> Result<DeltaPage<TodoTask>, GraphError> {
        let url = self.link(link)?;
        let call = Call::new("todoTask.delta", target, Method::GET, url, TASKS_PERMISSION)
            .delta(DeltaRole::Follow)
            .prefer(self.page_size_preference());
        self.delta_page(&call).await
    }

    /// One task. `GET /users/{id}/todo/lists/{id}/tasks/{id}`.
    pub async fn get_todo_task(
        &self,
        target: &Target,
        list_id: &str,
        id: &str,
    ) -> Result<TodoTask, GraphError> {
        let url = self.user_url(&target.mailbox, &["todo", "lists", list_id, "tasks", id]);
        let call = Call::new("todoTask.get", target, Method::GET, url, TASKS_PERMISSION).item();
        self.fetch(&call).await
    }

    /// Create a task in list `list_id`. `POST /users/{id}/todo/lists/{id}/tasks` → 201.
    /// Not idempotent: the caller records the id it gets back before anything else.
    pub async fn create_todo_task(
        &self,
        target: &Target,
        list_id: &str,
        task: &TodoTask,
    ) -> Result<TodoTask, GraphError> {
        let url = self.user_url(&target.mailbox, &["todo", "lists", list_id, "tasks"]);
        let call = Call::new(
            "todoTask.create",
            target,
            Method::POST,
            url,
            TASKS_PERMISSION,
        )
        .json(task)?;
        self.fetch(&call).await
    }

    /// Change a task. `PATCH /users/{id}/todo/lists/{id}/tasks/{id}`, `If-Match` when given.
    pub async fn update_todo_task(
        &self,
        target: &Target,
        list_id: &str,
        id: &str,
        patch: &TodoTask,
        etag: Option<&str>,
    ) -> Result<TodoTask, GraphError> {
        let url = self.user_url(&target.mailbox, &["todo", "lists", list_id, "tasks", id]);
        let call = Call::new(
            "todoTask.update",
            target,
            Method::PATCH,
            url,
            TASKS_PERMISSION,
        )
        .item()
        .if_match(etag)
        .json(patch)?;
        self.fetch(&call).await
    }

    /// Delete a task. `DELETE /users/{id}/todo/lists/{id}/tasks/{id}` → 204.
    pub async fn delete_todo_task(
        &self,
        target: &Target,
        list_id: &str,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.user_url(&target.mailbox, &["todo", "lists", list_id, "tasks", id]);
        let call = Call::new(
            "todoTask.delete",
            target,
            Method::DELETE,
            url,
            TASKS_PERMISSION,
        )
        .item()
        .if_match(etag);
        self.fetch_empty(&call).await
    }
}
