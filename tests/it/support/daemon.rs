//! Running the whole daemon in a test and waiting for what it should bring about.

use super::world::World;
use exsync::config::Settings;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The bound on every wait (conditions, not timings, are asserted).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running instance (`App::run`) and how to stop it.
pub struct Instance {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), exsync::app::AppError>>,
}

impl Instance {
    /// Start the daemon on `world`'s database with `settings`.
    pub fn start(world: &World, settings: Settings) -> Instance {
        let stop = CancellationToken::new();
        let app = world.app(settings);
        let task = tokio::spawn(app.run(stop.clone()));
        Instance { stop, task }
    }

    /// Stop it and check it ended without an error.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("run");
    }
}

/// Wait until `condition` holds (checked every 50 ms), failing after [`PATIENCE`].
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for: {what}");
}
