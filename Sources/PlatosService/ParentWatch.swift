#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Stops a service whose supervisor is gone.
///
/// `platos dev` passes its pid to its children in `PLATOS_PARENT_PID`. When it stops normally it
/// stops them first; when it is killed (SIGKILL, a crash), nothing would, and the children would
/// keep their ports and database files until someone finds them. So a service started with that
/// variable checks once a second that its parent is still that process, and otherwise sends
/// itself SIGTERM: it drains and exits like any shutdown.
enum ParentWatch {
    static let variable = "PLATOS_PARENT_PID"

    static func start(environment: [String: String], logger: Logger) -> Task<Void, Never>? {
        guard let value = environment[variable], let parent = pid_t(value), parent > 1 else { return nil }
        return Task.detached {
            while !Task.isCancelled {
                // A parent that died before this first look counts too: the variable is only ever
                // set by the supervisor, for its own children.
                if getppid() != parent {
                    logger.warning(
                        "the supervising process is gone; shutting down",
                        metadata: ["parent_pid": "\(parent)", "ppid": "\(getppid())"])
                    kill(getpid(), SIGTERM)
                    return
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
