import GRDB

/// The registry's tables, as versioned migrations. Append new migrations; never edit a shipped one.
enum RegistrySchema {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v1: agents, clusters, memberships, tokens, events") { db in
            try db.execute(
                sql: """
                    CREATE TABLE agent (
                        id TEXT PRIMARY KEY,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        slug TEXT NOT NULL, name TEXT NOT NULL,
                        avatar_url TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
                        metadata TEXT NOT NULL DEFAULT '{}',
                        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                        UNIQUE (org, project, env, slug)
                    );
                    CREATE TABLE cluster (
                        id TEXT PRIMARY KEY,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        slug TEXT NOT NULL, name TEXT NOT NULL,
                        metadata TEXT NOT NULL DEFAULT '{}',
                        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                        UNIQUE (org, project, env, slug)
                    );
                    -- One row per agent: the primary key is what makes "at most one cluster per
                    -- agent" hold even for racing writers, not a check in Swift.
                    CREATE TABLE membership (
                        agent_id TEXT PRIMARY KEY REFERENCES agent(id) ON DELETE CASCADE,
                        cluster_id TEXT NOT NULL REFERENCES cluster(id) ON DELETE CASCADE,
                        joined_at INTEGER NOT NULL
                    );
                    CREATE INDEX membership_by_cluster ON membership(cluster_id);
                    -- Every membership change (and token revocation), in commit order; its rowid
                    -- is the membership version `registry.watch` resumes from.
                    CREATE TABLE membership_event (
                        version INTEGER PRIMARY KEY AUTOINCREMENT,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        agent_id TEXT NOT NULL DEFAULT '',
                        cluster_id TEXT NOT NULL DEFAULT '',
                        previous_cluster_id TEXT NOT NULL DEFAULT '',
                        revoked_token_id TEXT NOT NULL DEFAULT '',
                        at INTEGER NOT NULL
                    );
                    CREATE TABLE token (
                        id TEXT PRIMARY KEY,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        role INTEGER NOT NULL,
                        agent_id TEXT NOT NULL DEFAULT '',
                        bound_user_id TEXT NOT NULL DEFAULT '',
                        description TEXT NOT NULL DEFAULT '',
                        secret_hash BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL DEFAULT 0,
                        revoked_at INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX token_by_scope ON token(org, project, env, id);
                    -- A retried create with the same key returns the first result.
                    CREATE TABLE idempotency (
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        method TEXT NOT NULL, key TEXT NOT NULL, result_id TEXT NOT NULL,
                        PRIMARY KEY (org, project, env, method, key)
                    );
                    """)
        }
        migrator.registerMigration("v2: membership events by scope") { db in
            // Public answers count a scope's own changes (scopeVersion), not the global version.
            try db.execute(sql: "CREATE INDEX membership_event_by_scope ON membership_event(org, project, env, version)")
        }
    }
}
