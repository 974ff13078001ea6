import GRDB

/// The memory database's tables, as versioned migrations: a migration, once released, is never
/// edited; a change is a new migration.
public enum MemorySchema {
    /// Registers every migration, for ``ServiceDatabase/open(path:synchronous:label:migrations:)``.
    public static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v1 memories, tags, scoped full-text index, history, idempotency") { db in
            try db.execute(
                sql: """
                    CREATE TABLE memories (
                        rowid INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        org TEXT NOT NULL,
                        project TEXT NOT NULL,
                        env TEXT NOT NULL,
                        owner_kind INTEGER NOT NULL,
                        owner_id TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        author_agent_id TEXT NOT NULL,
                        visibility INTEGER NOT NULL,
                        version INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        tags_json TEXT NOT NULL,
                        metadata_json TEXT NOT NULL,
                        -- Last, so that reading the columns before it never touches the overflow
                        -- pages of a long content.
                        content TEXT NOT NULL
                    );
                    -- list, get-by-scope and forget_user of an agent: one owner and one user.
                    CREATE INDEX memories_by_owner ON memories(org, project, env, owner_kind, owner_id, user_id);
                    -- forget_user of an admin: one user across the project scope.
                    CREATE INDEX memories_by_user ON memories(org, project, env, user_id);

                    CREATE TABLE memory_tags (
                        memory_rowid INTEGER NOT NULL,
                        tag TEXT NOT NULL,
                        PRIMARY KEY (memory_rowid, tag)
                    ) WITHOUT ROWID;

                    -- The index text of each memory (see FTSQueryEscaper): scope-prefixed word
                    -- hashes. Kept in a table of its own, not in `memories`, so that rows read by
                    -- get/list/recall stay small, and kept at all because an external-content FTS5
                    -- table needs the exact indexed text to remove a row.
                    CREATE TABLE memory_terms (
                        rowid INTEGER PRIMARY KEY,
                        terms TEXT NOT NULL
                    );
                    CREATE VIRTUAL TABLE memory_fts USING fts5(
                        terms, content = 'memory_terms', content_rowid = 'rowid', tokenize = 'ascii'
                    );
                    CREATE TRIGGER memory_terms_ai AFTER INSERT ON memory_terms BEGIN
                        INSERT INTO memory_fts(rowid, terms) VALUES (new.rowid, new.terms);
                    END;
                    CREATE TRIGGER memory_terms_ad AFTER DELETE ON memory_terms BEGIN
                        INSERT INTO memory_fts(memory_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
                    END;
                    CREATE TRIGGER memory_terms_au AFTER UPDATE ON memory_terms BEGIN
                        INSERT INTO memory_fts(memory_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
                        INSERT INTO memory_fts(rowid, terms) VALUES (new.rowid, new.terms);
                    END;

                    -- Carries the scope columns of its memory, so history stays scoped (and
                    -- erasable) after the memory itself is deleted.
                    CREATE TABLE memory_history (
                        seq INTEGER PRIMARY KEY,
                        memory_id TEXT NOT NULL,
                        org TEXT NOT NULL,
                        project TEXT NOT NULL,
                        env TEXT NOT NULL,
                        owner_kind INTEGER NOT NULL,
                        owner_id TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        action INTEGER NOT NULL,
                        actor_agent_id TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        at_ms INTEGER NOT NULL,
                        old_content TEXT NOT NULL,
                        new_content TEXT NOT NULL
                    );
                    CREATE INDEX memory_history_by_memory ON memory_history(memory_id, seq);
                    CREATE INDEX memory_history_by_user ON memory_history(org, project, env, user_id);

                    -- Keyed by the writing agent: a key is that agent's, whichever cluster it is in.
                    CREATE TABLE memory_idempotency (
                        org TEXT NOT NULL,
                        project TEXT NOT NULL,
                        env TEXT NOT NULL,
                        agent_id TEXT NOT NULL,
                        key TEXT NOT NULL,
                        memory_id TEXT NOT NULL,
                        fingerprint INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (org, project, env, agent_id, key)
                    ) WITHOUT ROWID;
                    CREATE INDEX memory_idempotency_by_memory ON memory_idempotency(memory_id);
                    """)
        }
        migrator.registerMigration("v2 full-text merges take levels of two segments") { db in
            // Read by the 'merge' steps of SQLiteMemoryStore+IndexMaintenance (FTS5's automerge,
            // during writes, keeps its own setting); stored in the index's config table.
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts, rank) VALUES('usermerge', 2)")
        }
    }
}
