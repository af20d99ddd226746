import Foundation
import Logging
import PostgresClient

extension Drill {
    /// `[drill] amcheck = true`: pg_amcheck over a restored scratch database, before the data
    /// checks. amcheck is installed into the scratch database's `pg_catalog` (dropped with it;
    /// not in a user schema, where the `objects` check would count its functions). Without the
    /// rights to install or run it, or without pg_amcheck, the check is skipped with the reason.
    /// - Returns: no check when the option is off.
    func amcheckScratch(_ scratchName: String, database: String, server: PostgresServer, logger: Logger) async throws -> [CheckResult] {
        guard configuration.drill.amcheck else { return [] }
        let program: String
        do {
            program = try await server.tool("pg_amcheck")
        } catch let error as BackupError where error.code == .toolMissing {
            return [PageChecks.skipped("amcheck", "\(error.message) (pg_amcheck exists from PostgreSQL 14)")]
        }
        let connection = try await server.connect(database: scratchName, logger: logger)
        do {
            try await connection.query("create extension if not exists amcheck with schema pg_catalog")
        } catch let error as PostgresError {
            return [PageChecks.skipped("amcheck", "cannot install the amcheck extension in the scratch database (\(error.message)); drill as a superuser, or install amcheck in template1")]
        }
        let allowed = try await connection.query("""
            select pg_catalog.has_function_privilege(p.oid, 'execute') from pg_catalog.pg_proc p
            where p.proname in ('verify_heapam', 'bt_index_parent_check') and p.pronamespace = (
                select extnamespace from pg_catalog.pg_extension where extname = 'amcheck')
            """).rows.compactMap { $0[0] }
        guard allowed.count >= 2, allowed.allSatisfy({ $0 == "t" }) else {
            return [PageChecks.skipped("amcheck", "the drill role may not execute amcheck's verify_heapam and bt_index_parent_check; GRANT EXECUTE on them, or drill as a superuser")]
        }
        let checks = PageChecks(binDirectory: (program as NSString).deletingLastPathComponent, owner: nil, timeoutSeconds: configuration.drill.checkTimeoutSeconds,
                                jobs: configuration.drill.jobs, logger: logger)
        return [try await checks.amcheck(arguments: [], environment: server.childEnvironment(database: scratchName),
                                         databaseNames: [scratchName: database], program: program)]
    }
}
