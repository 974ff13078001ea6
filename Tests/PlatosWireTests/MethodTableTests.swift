import PlatosProto
import Testing

/// The generated method table names every method DESIGN.md §5 lists, as it spells them
/// (`<service>.<method in snake_case>`), and nothing twice.
@Suite struct MethodTableTests {
    static let design: Set<String> = [
        "agents.create", "agents.get", "agents.list", "agents.update", "agents.delete",
        "clusters.create", "clusters.get", "clusters.list", "clusters.update", "clusters.delete",
        "clusters.add_member", "clusters.remove_member", "clusters.move_member",
        "tokens.issue", "tokens.revoke", "tokens.list", "auth.resolve", "registry.watch",
        "memory.write", "memory.recall", "memory.get", "memory.list", "memory.update", "memory.delete",
        "memory.history", "memory.forget_user",
        "threads.create", "threads.get", "threads.list", "threads.update", "threads.delete", "threads.watch",
        "messages.post", "messages.list",
        "tasks.spawn", "tasks.claim", "tasks.heartbeat", "tasks.complete", "tasks.fail", "tasks.cancel",
        "tasks.get", "tasks.list", "tasks.watch",
        "context.load", "health.check",
    ]

    @Test func everyMethodOfTheDesignIsInTheTableUnderItsName() {
        let names = V1.allMethods.map(\.name)
        #expect(Set(names).count == names.count, "a name appears twice: \(names)")
        #expect(Self.design.subtracting(names).isEmpty, "missing: \(Self.design.subtracting(names).sorted())")
        // Anything beyond the design follows the same spelling.
        for name in names {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            #expect(parts.count == 2, "\(name)")
            #expect(parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isLowercase || $0 == "_" } }, "\(name)")
        }
    }

    @Test func streamsAndInternalMethodsAreMarkedAsTheDesignSays() {
        let byName = Dictionary(uniqueKeysWithValues: V1.allMethods.map { ($0.name, $0) })
        for stream in ["registry.watch", "threads.watch", "tasks.watch"] {
            #expect(byName[stream]?.kind == .serverStreaming, "\(stream)")
        }
        // auth.resolve and registry.watch are for the gateway only, never routed to the public.
        #expect(byName["auth.resolve"]?.access == .internal)
        #expect(byName["registry.watch"]?.access == .internal)
        #expect(byName["context.load"]?.owner == .gateway)
    }
}
