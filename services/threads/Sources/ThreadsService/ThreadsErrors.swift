import PlatosRPC

/// The errors whose exact wording matters: a resource outside the caller's scope is answered
/// with the very same status and text as one that does not exist, so ids leak nothing.
enum ThreadsErrors {
    /// A retry must repeat the write it retries: the same key with another body is a mistake
    /// that would otherwise lose the new body without a word.
    static func idempotencyKeyReused(_ key: String, for what: String) -> RPCError {
        RPCError(
            .failedPrecondition,
            "idempotency_key '\(key)' was already used for a different \(what); use a new key for a new \(what)")
    }

    /// A repeated tasks.complete or tasks.fail under the same lease with another body: like a
    /// reused idempotency key, it would otherwise be answered OK while its body was dropped.
    static func alreadyFinished(_ taskId: String, _ how: String, _ field: String) -> RPCError {
        RPCError(
            .failedPrecondition,
            "task '\(taskId)' already \(how) with another \(field) under this lease; a retry must repeat the \(field) it sent")
    }

    static func threadNotFound(_ id: String) -> RPCError {
        RPCError(.notFound, "thread '\(id)' not found")
    }

    static func taskNotFound(_ id: String) -> RPCError {
        RPCError(.notFound, "task '\(id)' not found")
    }

    static func staleLease(_ taskId: String) -> RPCError {
        RPCError(
            .failedPrecondition,
            "the lease on task '\(taskId)' is no longer held (it expired, or the task was requeued, finished or cancelled)")
    }

    static let notAnAgent = RPCError(
        .permissionDenied, "threads, messages and tasks belong to agents: call with an agent's principal")
}
