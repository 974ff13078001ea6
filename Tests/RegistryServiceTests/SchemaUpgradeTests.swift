import Foundation
import GRDB
import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing
import PlatosTestSupport

@testable import RegistryService

/// A database written by an older registry opens in this one: the migrations it lacks are
/// applied, and what it held is still there.
@Suite struct SchemaUpgradeTests {
    @Test func aVersionOneDatabaseIsUpgradedWithItsData() async throws {
        let path = TestDirectories.make("registry-v1") + "/r.sqlite"
        var migrator = DatabaseMigrator()
        RegistrySchema.register(&migrator)
        let first = try #require(migrator.migrations.first)
        do {
            let old = try DatabaseQueue(path: path)
            try migrator.migrate(old, upTo: first)
            try await old.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO agent (id, org, project, env, slug, name, created_at, updated_at)
                        VALUES ('agt_old', 'acme', 'wally', 'prod', 'old-timer', 'Old Timer', 1, 1)
                        """)
            }
        }

        let handlers = try Registry.handlers(databasePath: path)
        let signer = try PrincipalSigner(secret: Array("schema-upgrade-tests-internal-secret".utf8))
        let admin = RPCClient(
            transport: SignedTransport(
                inner: InProcessTransport(router: handlers.router(signer: signer)), signer: signer,
                principal: V1.Principal(scope: V1.Scope(org: "acme", project: "wally", env: "prod"), role: .admin)))
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: "agt_old")).slug == "old-timer")
        // The newer migrations ran: the v2 index is there, and the database records every migration.
        let check = try DatabaseQueue(path: path)
        let upgraded = migrator
        let (index, applied) = try await check.read { db in
            (
                try String.fetchOne(db, sql: "SELECT name FROM sqlite_master WHERE name = 'membership_event_by_scope'"),
                try upgraded.appliedIdentifiers(db)
            )
        }
        #expect(index == "membership_event_by_scope")
        #expect(applied == Set(migrator.migrations))
    }
}
