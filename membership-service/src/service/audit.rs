//! The workspace audit log: one event per change, written in the change's
//! transaction, chained per workspace (each event stores the hash of the
//! previous one), so an edited or deleted row breaks the chain.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Membership, RequestContext, acting, ms};
use crate::{
    auth::Caller,
    error::{MembershipError, Result},
    store::{self, audit_event, workspace},
};

/// The hash the chain of a new workspace starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One change to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub target: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditView {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub seq: i64,
    pub actor: String,
    pub actor_email: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
    pub created_at: DateTime<Utc>,
    pub client_ip: String,
    pub trace_id: String,
    pub hash: String,
}

fn json(value: &serde_json::Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev: &str,
    workspace_id: Uuid,
    seq: i64,
    actor: &str,
    actor_email: &str,
    action: &str,
    target: &str,
    before: &str,
    after: &str,
    created_at: i64,
    client_ip: &str,
    trace_id: &str,
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(prev.as_bytes());
    field(workspace_id.as_bytes());
    field(&seq.to_be_bytes());
    field(actor.as_bytes());
    field(actor_email.as_bytes());
    field(action.as_bytes());
    field(target.as_bytes());
    field(before.as_bytes());
    field(after.as_bytes());
    field(&created_at.to_be_bytes());
    field(client_ip.as_bytes());
    field(trace_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends an event on `txn`, which must hold the workspace lock.
pub(crate) async fn record(
    txn: &impl ConnectionTrait,
    workspace_id: Uuid,
    caller: &Caller,
    entry: AuditEntry<'_>,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<()> {
    let ws = workspace::Entity::find_by_id(workspace_id)
        .one(txn)
        .await?
        .ok_or(MembershipError::WorkspaceNotFound)?;
    let seq = ws.audit_seq + 1;
    let (actor, actor_email) = match caller {
        Caller::Person(p) => (p.account_id.to_string(), p.email.clone()),
        Caller::Service(s) => (format!("service:{}", s.name), String::new()),
    };
    let at = ms(now);
    let before = json(&entry.before);
    let after = json(&entry.after);
    let client_ip: String = ctx.client_ip.chars().take(64).collect();
    let trace_id: String = ctx.trace_id.chars().take(32).collect();
    let hash = chain_hash(
        &ws.audit_head,
        workspace_id,
        seq,
        &actor,
        &actor_email,
        entry.action,
        &entry.target,
        &before,
        &after,
        at,
        &client_ip,
        &trace_id,
    );
    audit_event::Entity::insert(audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        seq: Set(seq),
        actor: Set(actor),
        actor_email: Set(actor_email),
        action: Set(entry.action.to_owned()),
        target: Set(entry.target),
        before: Set(before),
        after: Set(after),
        client_ip: Set(client_ip),
        trace_id: Set(trace_id),
        prev_hash: Set(ws.audit_head.clone()),
        hash: Set(hash.clone()),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(txn)
    .await?;
    workspace::Entity::update_many()
        .col_expr(workspace::Column::AuditSeq, Expr::value(seq))
        .col_expr(workspace::Column::AuditHead, Expr::value(hash))
        .filter(workspace::Column::Id.eq(workspace_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Recomputes the chain of a workspace: `Ok(None)` when every event links
/// to the one before and the head matches; otherwise the first broken seq.
pub async fn verify_chain(db: &impl ConnectionTrait, workspace_id: Uuid) -> Result<Option<i64>> {
    let ws = workspace::Entity::find_by_id(workspace_id)
        .one(db)
        .await?
        .ok_or(MembershipError::WorkspaceNotFound)?;
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await?;
    let mut prev = GENESIS.to_owned();
    for (i, e) in events.iter().enumerate() {
        let expected = chain_hash(
            &prev,
            e.workspace_id,
            e.seq,
            &e.actor,
            &e.actor_email,
            &e.action,
            &e.target,
            &e.before,
            &e.after,
            e.created_at,
            &e.client_ip,
            &e.trace_id,
        );
        if e.seq != i as i64 + 1 || e.prev_hash != prev || e.hash != expected {
            return Ok(Some(e.seq));
        }
        prev = expected;
    }
    if ws.audit_head != prev || ws.audit_seq != events.len() as i64 {
        return Ok(Some(ws.audit_seq));
    }
    Ok(None)
}

impl Membership {
    /// Tenant Admins: the log, newest first, optionally by action or actor.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        action: &str,
        actor: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<AuditView>, String)> {
        let me = acting(self.db(), caller, workspace_id).await?;
        me.require_admin()?;
        let list = format!("audit/{workspace_id}/{action}/{actor}");
        let page = self.pages().request_i64(&list, page_size, page_token)?;
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::WorkspaceId.eq(workspace_id))
            .order_by_desc(audit_event::Column::Seq)
            .limit(page.size + 1);
        if !action.is_empty() {
            query = query.filter(audit_event::Column::Action.eq(action));
        }
        if !actor.is_empty() {
            query = query.filter(audit_event::Column::Actor.eq(actor));
        }
        if let Some(seq) = page.cursor {
            query = query.filter(audit_event::Column::Seq.lt(seq));
        }
        let mut rows = query.all(self.db()).await?;
        let mut next = String::new();
        if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            if let Some(last) = rows.last() {
                next = self.pages().encode_i64(&list, last.seq);
            }
        }
        Ok((
            rows.into_iter()
                .map(|e| AuditView {
                    id: e.id,
                    workspace_id: e.workspace_id,
                    seq: e.seq,
                    actor: e.actor,
                    actor_email: e.actor_email,
                    action: e.action,
                    target: e.target,
                    before: e.before,
                    after: e.after,
                    created_at: store::time(e.created_at),
                    client_ip: e.client_ip,
                    trace_id: e.trace_id,
                    hash: e.hash,
                })
                .collect(),
            next,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_when_any_field_changes() {
        let w = Uuid::nil();
        let base = chain_hash(GENESIS, w, 1, "a", "e", "x", "t", "", "", 1, "ip", "tr");
        assert_ne!(
            base,
            chain_hash(GENESIS, w, 1, "a", "e", "x", "t", "", "", 2, "ip", "tr")
        );
        assert_ne!(
            base,
            chain_hash(GENESIS, w, 1, "b", "e", "x", "t", "", "", 1, "ip", "tr")
        );
        // Field boundaries matter: moving a character between fields changes it.
        assert_ne!(
            chain_hash(GENESIS, w, 1, "ab", "", "x", "t", "", "", 1, "", ""),
            chain_hash(GENESIS, w, 1, "a", "b", "x", "t", "", "", 1, "", "")
        );
    }
}
