//! Owners: the record keeps its tenant, each tenant has its own listing index (written at
//! create, pruned like `{jobs}:all`), and idempotency keys are scoped by tenant.

mod common;

use std::time::Duration;

use common::{harness, queued};
use redis::AsyncCommands as _;
use vidq_core::{IdempotencyOutcome, JobId, JobState};

#[tokio::test]
async fn each_owner_lists_its_own_jobs_from_its_own_index() {
    let h = harness().await;
    let mut a1 = queued();
    a1.owner = Some("tenant-a".into());
    let mut a2 = queued();
    a2.owner = Some("tenant-a".into());
    let mut b1 = queued();
    b1.owner = Some("tenant-b".into());
    let nobody = queued();
    for job in [&a1, &a2, &b1, &nobody] {
        h.store.create(job).await.unwrap();
    }
    assert_eq!(
        h.store.get(&a1.id).await.unwrap().unwrap().owner.as_deref(),
        Some("tenant-a")
    );
    assert_eq!(h.store.get(&nobody.id).await.unwrap().unwrap().owner, None);

    let ids = |page: vidq_core::JobPage| {
        let mut ids: Vec<JobId> = page.jobs.iter().map(|j| j.id).collect();
        ids.sort_by_key(ToString::to_string);
        ids
    };
    let mut want_a = vec![a1.id, a2.id];
    want_a.sort_by_key(ToString::to_string);
    let page = h
        .store
        .list_tenant("tenant-a", None, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(page), want_a);
    let page = h
        .store
        .list_tenant("tenant-b", None, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(page), vec![b1.id]);
    let page = h
        .store
        .list_tenant("tenant-b", Some(JobState::Succeeded), None, 10)
        .await
        .unwrap();
    assert!(page.jobs.is_empty());
    // Paging with a cursor stays within the tenant.
    let first = h
        .store
        .list_tenant("tenant-a", None, None, 1)
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 1);
    let second = h
        .store
        .list_tenant("tenant-a", None, first.next_cursor.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(second.jobs.len(), 1);
    assert_ne!(first.jobs[0].id, second.jobs[0].id);
    assert_eq!(h.store.list(None, None, 10).await.unwrap().jobs.len(), 4);

    // An entry whose record is gone is pruned from the tenant's index like from `{jobs}:all`.
    let index = format!("{}:{{jobs}}:tenant:tenant-b", h.prefix);
    let mut conn = h.conn().await;
    let now = h.store.redis_now_ms().await.unwrap();
    let gone = JobId::new();
    let _: () = conn
        .zadd(
            &index,
            gone.to_string(),
            now - vidq_core::INDEX_GRACE_MS - 5_000,
        )
        .await
        .unwrap();
    assert_eq!(h.store.prune_index(100).await.unwrap(), 1);
    let members: Vec<String> = conn.zrange(&index, 0, -1).await.unwrap();
    assert_eq!(members, vec![b1.id.to_string()]);
    h.cleanup().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_tenant() {
    let h = harness().await;
    let ttl = Duration::from_secs(60);
    let (a, b) = (JobId::new(), JobId::new());
    let put = |tenant, id| {
        h.store
            .put_tenant_idempotency_key(Some(tenant), "order-42", "hash", id, ttl)
    };
    assert_eq!(put("tenant-a", &a).await.unwrap(), IdempotencyOutcome::New);
    assert_eq!(put("tenant-b", &b).await.unwrap(), IdempotencyOutcome::New);
    assert_eq!(
        put("tenant-a", &b).await.unwrap(),
        IdempotencyOutcome::Existing {
            id: a,
            same_body: true
        }
    );
    // The unscoped key is yet another key.
    let c = JobId::new();
    assert_eq!(
        h.store
            .put_idempotency_key("order-42", "hash", &c, ttl)
            .await
            .unwrap(),
        IdempotencyOutcome::New
    );
    assert!(
        h.store
            .release_tenant_idempotency_key(Some("tenant-b"), "order-42", &b)
            .await
            .unwrap()
    );
    assert_eq!(put("tenant-b", &c).await.unwrap(), IdempotencyOutcome::New);
    h.cleanup().await;
}
