//! A settle run again with the same arguments (what a client library does when it resends a
//! script whose reply it lost, say across a failover) answers applied and changes nothing;
//! another call (another nonce, or another delivery's token) is still refused.

mod common;

use common::{admin, connect, redis_url, unique_prefix};
use redis::AsyncCommands;
use vidq_queue::{Delivery, QueueConfig, RedisQueue};

const COMMON: &str = include_str!("../src/lua/common.lua");
const ACK: &str = include_str!("../src/lua/ack.lua");
const FINISH: &str = include_str!("../src/lua/finish.lua");

struct Rig {
    q: RedisQueue<u32>,
    conn: vidq_redis::Conn,
    keys: String,
}

impl Rig {
    async fn new(name: &str) -> (Self, Delivery) {
        let url = redis_url();
        let prefix = unique_prefix(name);
        let config = QueueConfig::new(name).with_prefix(prefix.clone());
        let q = connect::<u32>(&url, config).await.unwrap();
        q.enqueue(&1).await.unwrap();
        let (d, _) = q.claim(1).await.unwrap().remove(0);
        let rig = Self {
            q,
            conn: admin(&url).await,
            keys: format!("{prefix}:{{{name}}}:"),
        };
        (rig, d)
    }

    fn k(&self, s: &str) -> String {
        format!("{}{s}", self.keys)
    }

    /// ack.lua for one task: rescheduled due now (`delay` "0") or done (`delay` "").
    async fn ack(&mut self, d: &Delivery, token: &str, nonce: &str, delay: &str) -> Vec<i64> {
        let script = redis::Script::new(&format!("{COMMON}\n{ACK}"));
        let mut call = script.prepare_invoke();
        call.key(self.k("lease"))
            .key(self.k("data"))
            .key(self.k("dlv"))
            .key(self.k("due"))
            .arg(self.k("wake"))
            .arg(nonce)
            .arg(&d.id)
            .arg(token)
            .arg(delay);
        call.invoke_async(&mut self.conn).await.unwrap()
    }

    async fn finish(&mut self, d: &Delivery, token: &str, nonce: &str, mode: &str) -> i64 {
        let script = redis::Script::new(&format!("{COMMON}\n{FINISH}"));
        let mut call = script.prepare_invoke();
        call.key(self.k("lease"))
            .key(self.k("dlv"))
            .key(self.k("due"))
            .key(self.k("dead"))
            .key(self.k("why"))
            .arg(&d.id)
            .arg(token)
            .arg(mode)
            .arg(0)
            .arg("test")
            .arg(self.k("wake"))
            .arg(nonce);
        call.invoke_async(&mut self.conn).await.unwrap()
    }

    async fn meta(&mut self, d: &Delivery) -> String {
        let key = self.k("dlv");
        self.conn.hget(key, &d.id).await.unwrap()
    }
}

#[tokio::test]
async fn a_reschedule_run_again_answers_applied_and_other_calls_are_refused() {
    let (mut r, d1) = Rig::new("replay-resched").await;
    let t1 = d1.token.clone();
    assert_eq!(r.ack(&d1, &t1, "aaaa", "0").await, [1]);
    assert_eq!(
        r.ack(&d1, &t1, "aaaa", "0").await,
        [1],
        "the same call again"
    );
    let depth = r.q.depth().await.unwrap();
    assert_eq!((depth.due, depth.leased), (1, 0), "one task, due once");
    assert_eq!(
        r.ack(&d1, &t1, "bbbb", "0").await,
        [0],
        "another call, same token"
    );
    assert_eq!(
        r.ack(&d1, &t1, "bbbb", "").await,
        [0],
        "an ack after the reschedule"
    );
    let (d2, _) = r.q.claim(1).await.unwrap().remove(0);
    assert_ne!(d2.token, d1.token);
    assert_eq!(
        r.ack(&d1, &t1, "aaaa", "0").await,
        [0],
        "the old call once another delivery holds the task"
    );
    assert!(
        !r.meta(&d2).await.ends_with("aaaa"),
        "the claim dropped the mark"
    );
    assert!(r.q.ack(&d2).await.unwrap());
    let depth = r.q.depth().await.unwrap();
    assert_eq!((depth.due, depth.leased), (0, 0));
}

#[tokio::test]
async fn a_finish_run_again_answers_applied_and_other_calls_are_refused() {
    let (mut r, d1) = Rig::new("replay-finish").await;
    let t1 = d1.token.clone();
    assert_eq!(r.finish(&d1, &t1, "cccc", "retry").await, 1);
    assert_eq!(
        r.finish(&d1, &t1, "cccc", "retry").await,
        1,
        "the same call again"
    );
    let meta = r.meta(&d1).await;
    assert_eq!(meta, format!("{t1} 1 0 cccc"), "one failure counted");
    assert_eq!(r.finish(&d1, &t1, "dddd", "dead").await, 0, "another call");
    assert_eq!(
        r.finish(&d1, "9.9", "cccc", "dead").await,
        0,
        "another token"
    );
    let depth = r.q.depth().await.unwrap();
    assert_eq!((depth.due, depth.dead), (1, 0));

    let (d2, _) = r.q.claim(1).await.unwrap().remove(0);
    let t2 = d2.token.clone();
    assert_eq!(r.finish(&d2, &t2, "eeee", "dead").await, 1);
    assert_eq!(
        r.finish(&d2, &t2, "eeee", "dead").await,
        1,
        "a burial again"
    );
    let depth = r.q.depth().await.unwrap();
    assert_eq!((depth.due, depth.dead, depth.leased), (0, 1, 0));
    assert_eq!(r.q.purge_dead().await.unwrap(), 1);
}
