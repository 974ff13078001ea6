import GRDB

/// The threads database, as versioned migrations: a migration, once released, is never edited;
/// a change is a new migration appended here.
public enum ThreadsSchema {
    /// Registers every migration, in order. Pass to `ServiceDatabase.open(migrations:)`.
    public static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v1 threads, messages, tasks, task events") { db in
            // Every table carries the project scope so that every statement can filter by it,
            // not only those that reach a row through its thread.
            try db.execute(
                sql: """
                    CREATE TABLE threads (
                        id TEXT PRIMARY KEY NOT NULL,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        owner_kind INTEGER NOT NULL, owner_id TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        title TEXT NOT NULL,
                        metadata TEXT NOT NULL,
                        created_by_agent_id TEXT NOT NULL,
                        last_seq INTEGER NOT NULL DEFAULT 0,
                        idempotency_key TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX threads_by_owner
                        ON threads(org, project, env, owner_kind, owner_id, created_at, id);
                    CREATE UNIQUE INDEX threads_idempotency
                        ON threads(org, project, env, created_by_agent_id, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;

                    -- A rowid table, not WITHOUT ROWID: contents run to 64 KiB, and large rows in a
                    -- clustered index make every page split expensive.
                    CREATE TABLE messages (
                        thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                        seq INTEGER NOT NULL,
                        id TEXT NOT NULL,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        role INTEGER NOT NULL,
                        content TEXT NOT NULL,
                        metadata TEXT NOT NULL,
                        author_agent_id TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        task_id TEXT NOT NULL,
                        idempotency_key TEXT,
                        created_at INTEGER NOT NULL,
                        UNIQUE (thread_id, seq)
                    );
                    CREATE UNIQUE INDEX messages_idempotency
                        ON messages(thread_id, author_agent_id, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;

                    CREATE TABLE tasks (
                        id TEXT PRIMARY KEY NOT NULL,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        cluster_id TEXT NOT NULL,
                        thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                        spawner_agent_id TEXT NOT NULL,
                        target_agent_id TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        prompt TEXT NOT NULL,
                        state INTEGER NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        lease_id TEXT NOT NULL DEFAULT '',
                        lease_expires_at INTEGER NOT NULL DEFAULT 0,
                        result TEXT NOT NULL DEFAULT '',
                        error TEXT NOT NULL DEFAULT '',
                        result_message_id TEXT NOT NULL DEFAULT '',
                        metadata TEXT NOT NULL,
                        idempotency_key TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX tasks_queue
                        ON tasks(org, project, env, cluster_id, target_agent_id, state, created_at);
                    CREATE INDEX tasks_by_cluster ON tasks(org, project, env, cluster_id, created_at, id);
                    CREATE INDEX tasks_by_thread ON tasks(thread_id);
                    CREATE INDEX tasks_leases ON tasks(state, lease_expires_at);
                    CREATE UNIQUE INDEX tasks_idempotency
                        ON tasks(org, project, env, spawner_agent_id, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;

                    -- Every state change of a task, as the task looked after it, so that
                    -- tasks.watch can resume from a cursor and never collapse two changes into one.
                    CREATE TABLE task_events (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        org TEXT NOT NULL, project TEXT NOT NULL, env TEXT NOT NULL,
                        cluster_id TEXT NOT NULL,
                        thread_id TEXT NOT NULL,
                        task_id TEXT NOT NULL,
                        task BLOB NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE INDEX task_events_by_thread ON task_events(thread_id, seq);
                    CREATE INDEX task_events_by_task ON task_events(task_id, seq);
                    CREATE INDEX task_events_by_age ON task_events(created_at);
                    """)
        }
        migrator.registerMigration("v2 partial task queue and lease indexes, no event age index") { db in
            // v1 indexed every task ever spawned by state, so each state change moved an entry
            // within indexes that only grow, and every round trip dirtied pages scattered over
            // them. Only queued tasks are looked up by queue position, and only running ones by
            // lease expiry: as partial indexes these hold the live tasks alone (a few pages),
            // spawn → claim → complete touches each once, and finished tasks leave them.
            // The literals are the wire values of TaskState (queued 1, running 2), which never
            // change; the queries repeat them as literals, so SQLite can use these indexes.
            // task_events is pruned by seq (it grows with time), so it needs no index on age.
            try db.execute(
                sql: """
                    DROP INDEX tasks_queue;
                    DROP INDEX tasks_leases;
                    DROP INDEX task_events_by_age;
                    CREATE INDEX tasks_queued
                        ON tasks(org, project, env, cluster_id, target_agent_id, created_at) WHERE state = 1;
                    CREATE INDEX tasks_running ON tasks(lease_expires_at) WHERE state = 2;
                    """)
        }
        migrator.registerMigration("v3 queued tasks indexed by target agent first") { db in
            // Same entries, target before cluster: a claim still finds its queue by equality, and
            // also finds, among only its own queued tasks, those left in a cluster the agent has
            // since left (SQLiteThreadsStore.strandedSQL), without walking the scope's queue.
            try db.execute(
                sql: """
                    DROP INDEX tasks_queued;
                    CREATE INDEX tasks_queued
                        ON tasks(org, project, env, target_agent_id, cluster_id, created_at) WHERE state = 1;
                    """)
        }
        migrator.registerMigration("v4 idempotency keys are unique per owner, not per agent") { db in
            // A replay is looked up among what the caller can see, and the insert that follows
            // a miss was refused by a key the agent used in a cluster it has since left: so the
            // answer (ALREADY_EXISTS, or success once that cluster deleted the thread) told the
            // agent whether a resource of its old cluster still existed. Keyed by owner too, a
            // key used elsewhere makes a new resource here, like any unused key.
            try db.execute(
                sql: """
                    DROP INDEX threads_idempotency;
                    CREATE UNIQUE INDEX threads_idempotency
                        ON threads(org, project, env, owner_kind, owner_id, created_by_agent_id, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;
                    DROP INDEX tasks_idempotency;
                    CREATE UNIQUE INDEX tasks_idempotency
                        ON tasks(org, project, env, cluster_id, spawner_agent_id, idempotency_key)
                        WHERE idempotency_key IS NOT NULL;
                    """)
        }
        migrator.registerMigration("v5 task events carry their task's end user") { db in
            // Tasks are held to the end-user rule threads follow (ThreadAccess.taskVisible): a
            // caller acting for one user sees only tasks spawned for it or for none. tasks.watch
            // reads task_events alone, under the same predicate, so each event needs its task's
            // user. A task's user never changes, so the events already logged take it from their
            // task (one with no task left, which threads.delete does not leave, gets none). The
            // watch queries still find their rows through task_events_by_task and
            // task_events_by_thread, and test the user on those rows as they test the scope.
            try db.execute(
                sql: """
                    ALTER TABLE task_events ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
                    UPDATE task_events SET user_id = COALESCE(
                        (SELECT user_id FROM tasks WHERE tasks.id = task_events.task_id), '');
                    """)
        }
    }
}
